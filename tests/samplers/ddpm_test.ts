import assert from "node:assert/strict";
import { ddpmStep, planDdpm, sampleDdpm } from "../../lib/samplers/ddpm.ts";
import { planIddpm, sampleIddpm } from "../../lib/samplers/iddpm.ts";
import { linearBetas } from "../../lib/samplers/schedule.ts";
import { batchNormals, normal, sampleRng, sampleRngs } from "../../lib/random/mod.ts";
import { ForaError } from "../../lib/errors.ts";
import type { LatentShape } from "../../lib/samplers/types.ts";
import { close, constantModel, maxAbsDiff, toyModel } from "./helpers.ts";

/** abar of original timestep t, straight from the betas. */
function abarAt(t: number): number {
  const betas = linearBetas();
  let p = 1;
  for (let s = 0; s <= t; s++) p *= 1 - betas[s];
  return p;
}

/** One guided-diffusion p_sample step written out by hand, float64, from abar at t and at prev. */
function handStep(x: number, eps: number, v: number | null, z: number, t: number, prev: number | null): number {
  const abar = abarAt(t), abarPrev = prev === null ? 1 : abarAt(prev);
  const beta = 1 - abar / abarPrev;
  const x0 = Math.sqrt(1 / abar) * x - Math.sqrt(1 / abar - 1) * eps;
  const mean = (beta * Math.sqrt(abarPrev) / (1 - abar)) * x0 + ((1 - abarPrev) * Math.sqrt(1 - beta) / (1 - abar)) * x;
  if (prev === null) return mean;
  const minLog = Math.log(beta * (1 - abarPrev) / (1 - abar));
  const logVar = v === null ? minLog : ((v + 1) / 2) * Math.log(beta) + (1 - (v + 1) / 2) * minLog;
  return mean + Math.exp(0.5 * logVar) * z;
}

const tiny: LatentShape = { batch: 1, channels: 1, height: 1, width: 2 };

Deno.test("a DDPM step with learned-range variance equals the step worked out by hand", async () => {
  const plan = planDdpm({ steps: 250 });
  const xT = new Float32Array([0.5, -1.25]);
  // model output [B=1, 2C=2, 1, 2]: eps (0.1, -0.3), then variance values (0.2, -0.6)
  const out = new Float32Array([0.1, -0.3, 0.2, -0.6]);
  const calls: Float32Array[] = [];
  const model = (x: Float32Array) => {
    calls.push(Float32Array.from(x));
    return Promise.resolve(Float32Array.from(out));
  };
  await sampleDdpm(model, xT, plan, tiny, [sampleRng(11, 0)]);
  const z = normal(sampleRng(11, 0), 2); // the first step's noise: sample 0's first C*H*W normals
  const want = [0, 1].map((j) => handStep(xT[j], out[j], out[2 + j], z[j], 999, 995));
  const got = calls[1]; // what the model sees at the second step
  want.forEach((w, j) => assert.ok(Math.abs(got[j] - w) <= 1e-6 * Math.abs(w), `${got[j]} vs ${w}`));
});

Deno.test("the last DDPM step adds no noise and returns the predicted x0", () => {
  const plan = planDdpm({ steps: 250 });
  const x = new Float32Array([0.3, -0.7]), eps = new Float32Array([0.05, 0.2]), v = new Float32Array([0.9, -0.9]);
  const got = ddpmStep(plan, 0, x, eps, v, null);
  [0, 1].forEach((j) => {
    const want = handStep(x[j], eps[j], null, 0, 0, null);
    assert.ok(Math.abs(got[j] - want) < 1e-6, `${got[j]} vs ${want}`);
    // at i = 0, abar_prev = 1 so the mean is x0 itself
    const x0 = x[j] / Math.sqrt(abarAt(0)) - Math.sqrt(1 / abarAt(0) - 1) * eps[j];
    assert.ok(Math.abs(got[j] - x0) < 1e-6);
  });
});

Deno.test("the first respaced index uses the clipped log-variance (its own is log 0)", () => {
  const plan = planDdpm({ steps: 250 });
  const s = plan.schedule;
  // index 1 with v = -1 (frac 0) uses the min log-variance, which at index 1 is unclipped
  const x = new Float32Array([1]), eps = new Float32Array([0]), z = new Float32Array([1]);
  const got = ddpmStep(plan, 1, x, eps, new Float32Array([-1]), z)[0];
  const mean = s.posteriorMeanCoef1[1] * s.sqrtRecipAlphasCumprod[1] + s.posteriorMeanCoef2[1];
  assert.ok(close(got, mean + Math.sqrt(s.posteriorVariance[1]), 1e-6));
  assert.equal(s.posteriorLogVarianceClipped[0], Math.log(s.posteriorVariance[1]));
});

Deno.test("fixed variances: small is the posterior variance, large is beta", () => {
  const small = planDdpm({ steps: 50, learnSigma: false });
  const large = planDdpm({ steps: 50, learnSigma: false, fixedVariance: "large" });
  assert.equal(small.variance, "fixed-small");
  assert.equal(large.variance, "fixed-large");
  const x = new Float32Array([0]), eps = new Float32Array([0]), z = new Float32Array([1]);
  const i = 20;
  assert.ok(close(ddpmStep(small, i, x, eps, null, z)[0], Math.sqrt(small.schedule.posteriorVariance[i]), 1e-6));
  assert.ok(close(ddpmStep(large, i, x, eps, null, z)[0], Math.sqrt(large.schedule.betas[i]), 1e-6));
});

Deno.test("DDPM plan: model times 999, 995, ... 0 and step index counting down", async () => {
  const plan = planDdpm();
  assert.equal(plan.modelTimes.length, 250);
  assert.deepEqual(plan.modelTimes.slice(0, 3), [999, 995, 991]);
  assert.equal(plan.modelTimes[249], 0);
  const seen: { index: number; modelTime: number }[] = [];
  const ks: number[] = [];
  const small = planDdpm({ steps: 5 });
  const shape: LatentShape = { batch: 1, channels: 1, height: 1, width: 1 };
  await sampleDdpm(
    (_x, step) => {
      seen.push(step);
      return Promise.resolve(new Float32Array([0, 0]));
    },
    new Float32Array([1]),
    small,
    shape,
    sampleRngs(1, 1),
    (info) => ks.push(info.k),
  );
  assert.deepEqual(seen.map((s) => s.index), [4, 3, 2, 1, 0]);
  assert.deepEqual(seen.map((s) => s.modelTime), small.modelTimes);
  assert.deepEqual(small.modelTimes, [999, 749, 500, 250, 0]);
  assert.deepEqual(ks, [0, 1, 2, 3, 4]);
});

Deno.test("each sample's noise comes from its own generator, whatever the batch", async () => {
  const shape2: LatentShape = { batch: 2, channels: 2, height: 2, width: 3 };
  const shape1: LatentShape = { ...shape2, batch: 1 };
  const plan = planDdpm({ steps: 25 });
  // initial latents and step noise both from the run's per-sample generators, in that order
  const rngs = sampleRngs(5, 2);
  const x2 = batchNormals(rngs, 12);
  const both = await sampleDdpm(toyModel(shape2, true), x2, plan, shape2, rngs);
  const rng1 = sampleRng(5, 1);
  const x1 = batchNormals([rng1], 12);
  assert.deepEqual(x1, x2.subarray(12));
  const alone = await sampleDdpm(toyModel(shape1, true), x1, plan, shape1, [rng1]);
  assert.deepEqual(alone, both.subarray(12));
});

Deno.test("the same seed gives the same DDPM sample; another seed does not", async () => {
  const shape: LatentShape = { batch: 1, channels: 2, height: 2, width: 3 };
  const plan = planDdpm({ steps: 20 });
  const run = (seed: number) => sampleDdpm(toyModel(shape, true), new Float32Array(12).fill(0.5), plan, shape, sampleRngs(seed, 1));
  assert.deepEqual(await run(3), await run(3));
  assert.ok(maxAbsDiff(await run(3), await run(4)) > 1e-3);
});

Deno.test("IDDPM is DDPM with 100 steps", async () => {
  const iddpm = planIddpm(), ddpm = planDdpm({ steps: 100 });
  assert.equal(iddpm.name, "iddpm");
  assert.deepEqual({ ...iddpm, name: "ddpm" }, ddpm);
  assert.equal(iddpm.modelTimes.length, 100);
  assert.deepEqual(iddpm.modelTimes.slice(0, 3), [999, 989, 979]);
  const shape: LatentShape = { batch: 2, channels: 2, height: 2, width: 3 };
  const xT = batchNormals(sampleRngs(8, 2), 12);
  const a = await sampleIddpm(toyModel(shape, true), xT, iddpm, shape, sampleRngs(8, 2));
  const b = await sampleDdpm(toyModel(shape, true), xT, ddpm, shape, sampleRngs(8, 2));
  assert.deepEqual(a, b);
});

Deno.test("DDPM refuses a model output of the wrong size and a noise list of the wrong length", async () => {
  const plan = planDdpm({ steps: 10 });
  const shape: LatentShape = { batch: 1, channels: 1, height: 1, width: 2 };
  await assert.rejects(sampleDdpm(constantModel(new Float32Array(2)), new Float32Array(2), plan, shape, sampleRngs(0, 1)), ForaError);
  await assert.rejects(sampleDdpm(constantModel(new Float32Array(4)), new Float32Array(2), plan, shape, []), ForaError);
  await assert.rejects(sampleDdpm(constantModel(new Float32Array(4)), new Float32Array(3), plan, shape, sampleRngs(0, 1)), ForaError);
});
