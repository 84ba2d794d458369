import assert from "node:assert/strict";
import { ddimSigma, ddimUpdate, planDdim, sampleDdim } from "../../lib/samplers/ddim.ts";
import { linearBetas, respace } from "../../lib/samplers/schedule.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import type { Denoiser, LatentShape } from "../../lib/samplers/types.ts";
import { close, maxAbsDiff, toyModel } from "./helpers.ts";

const shape: LatentShape = { batch: 2, channels: 2, height: 2, width: 3 };

/** abar of each original timestep, straight from the betas. */
const abar = (() => {
  const out: number[] = [];
  let p = 1;
  for (const b of linearBetas()) out.push(p *= 1 - b);
  return out;
})();

Deno.test("DDIM with eta = 0 is deterministic and draws no noise", async () => {
  const plan = planDdim({ steps: 50 });
  const xT = batchNormals(sampleRngs(1, 2), 12);
  const a = await sampleDdim(toyModel(shape, true), xT, plan, shape, []);
  const b = await sampleDdim(toyModel(shape, true), xT, plan, shape, sampleRngs(99, 2));
  assert.deepEqual(a, b);
});

Deno.test("a DDIM step matches the closed form sqrt(abar') x0 + sqrt(1 - abar') eps", async () => {
  const plan = planDdim({ steps: 50 });
  assert.deepEqual(plan.modelTimes.slice(0, 2), [999, 979]);
  const calls: { x: Float32Array; index: number; modelTime: number }[] = [];
  const xT = batchNormals(sampleRngs(2, 2), 12);
  await sampleDdim(toyModel(shape, true, calls), xT, plan, shape, []);
  const out = await toyModel(shape, true)(xT, { k: 0, index: 49, modelTime: 999 });
  const [a, aPrev] = [abar[999], abar[979]];
  for (let b = 0; b < 2; b++) {
    for (let j = 0; j < 12; j++) {
      const x = xT[b * 12 + j], eps = out[b * 24 + j]; // eps channels come first in each sample's 2C block
      const x0 = (x - Math.sqrt(1 - a) * eps) / Math.sqrt(a);
      const want = Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * eps;
      assert.ok(Math.abs(calls[1].x[b * 12 + j] - want) < 1e-5 * Math.max(1, Math.abs(want)));
    }
  }
  assert.deepEqual(calls.map((c) => c.index), [...Array(50).keys()].reverse());
});

Deno.test("respaced abar at index i is the original abar at timestep t_i", () => {
  const { timesteps, schedule } = respace(50);
  timesteps.forEach((t, i) => assert.ok(close(schedule.alphasCumprod[i], abar[t], 1e-12), `i=${i} t=${t}`));
});

/** The true eps of x at model time t for a known clean latent x0. */
function perfectDenoiser(x0: Float32Array, learnSigma: boolean): Denoiser {
  return (x, { modelTime }) => {
    const a = abar[modelTime];
    const n = x0.length / shape.batch, outC = learnSigma ? 2 : 1;
    const out = new Float32Array(x.length * outC);
    for (let b = 0; b < shape.batch; b++) {
      for (let j = 0; j < n; j++) out[b * n * outC + j] = (x[b * n + j] - Math.sqrt(a) * x0[b * n + j]) / Math.sqrt(1 - a);
    }
    return Promise.resolve(out);
  };
}

Deno.test("DDIM with a perfect denoiser recovers x0", async () => {
  const rngs = sampleRngs(4, 2);
  const x0 = batchNormals(rngs, 12).map((v) => 0.8 * v);
  const xT = batchNormals(rngs, 12);
  for (const learnSigma of [true, false]) {
    const got = await sampleDdim(perfectDenoiser(x0, learnSigma), xT, planDdim({ steps: 50, learnSigma }), shape, []);
    assert.ok(maxAbsDiff(got, x0) < 1e-4, `learnSigma ${learnSigma}: ${maxAbsDiff(got, x0)}`);
  }
});

Deno.test("DDIM sigma with eta = 1 is the DDPM posterior standard deviation", () => {
  const { schedule: s } = respace(50);
  for (const i of [1, 10, 49]) {
    assert.ok(close(ddimSigma(1, s.alphasCumprod[i], s.alphasCumprodPrev[i]) ** 2, s.posteriorVariance[i], 1e-12));
  }
});

Deno.test("DDIM with eta > 0 draws per-sample noise and depends on the seed", async () => {
  const plan = planDdim({ steps: 20, eta: 1 });
  const xT = new Float32Array(24).fill(0.3);
  const run = (seed: number) => sampleDdim(toyModel(shape, true), xT, plan, shape, sampleRngs(seed, 2));
  assert.deepEqual(await run(1), await run(1));
  assert.ok(maxAbsDiff(await run(1), await run(2)) > 1e-3);
  await assert.rejects(sampleDdim(toyModel(shape, true), xT, plan, shape, []));
});

Deno.test("ddimUpdate adds sigma z", () => {
  const x = new Float32Array([0.5]), eps = new Float32Array([0.25]), z = new Float32Array([2]);
  const base = ddimUpdate(x, eps, 0.5, 0.8)[0];
  const noisy = ddimUpdate(x, eps, 0.5, 0.8, { sigma: 0.1, z })[0];
  const x0 = (0.5 - Math.sqrt(0.5) * 0.25) / Math.sqrt(0.5);
  assert.ok(close(base, Math.sqrt(0.8) * x0 + Math.sqrt(0.2) * 0.25, 1e-6));
  assert.ok(close(noisy, Math.sqrt(0.8) * x0 + Math.sqrt(0.2 - 0.01) * 0.25 + 0.2, 1e-6));
});
