import assert from "node:assert/strict";
import { configBetas, type DiffusersDdimConfig, diffusersDdimSteps, diffusersTimesteps } from "../../lib/samplers/diffusers_schedule.ts";
import { ddimUpdate, planDdim, sampleDdim } from "../../lib/samplers/ddim.ts";
import { linearBetas, respace } from "../../lib/samplers/schedule.ts";
import { PIXART_DDIM_DEFAULT } from "../../lib/bundle/scheduler_config.ts";
import type { Denoiser, LatentShape } from "../../lib/samplers/types.ts";
import { close } from "./helpers.ts";

const config = (over: Partial<DiffusersDdimConfig> = {}): DiffusersDdimConfig => ({ ...PIXART_DDIM_DEFAULT, ...over });

/** abar of each training timestep of the linear betas. */
const abar = (() => {
  let p = 1;
  return Array.from(linearBetas(), (b) => (p *= 1 - b));
})();

Deno.test("set_timesteps as diffusers' DDIMScheduler spaces them (values from numpy)", () => {
  assert.deepEqual(diffusersTimesteps(8, config()), [999, 856, 714, 571, 428, 285, 143, 0]);
  assert.deepEqual(diffusersTimesteps(3, config()), [999, 500, 0], "numpy rounds 499.5 to even");
  assert.deepEqual(diffusersTimesteps(9, config({ timestepSpacing: "leading", stepsOffset: 1 })), [
    889,
    778,
    667,
    556,
    445,
    334,
    223,
    112,
    1,
  ]);
  assert.deepEqual(diffusersTimesteps(7, config({ timestepSpacing: "trailing", stepsOffset: 5 })), [999, 856, 713, 570, 428, 285, 142]);
});

Deno.test("step counts diffusers cannot space are refused: the float stride of 'trailing' at 61, an offset past the last timestep", () => {
  assert.throws(
    () => diffusersTimesteps(61, config({ timestepSpacing: "trailing" })),
    /diffusers makes 62 timesteps of it.*use 60 or 62 steps/,
  );
  assert.throws(
    () => diffusersTimesteps(1000, config({ timestepSpacing: "leading", stepsOffset: 1 })),
    /starts at timestep 1000, past the last training timestep 999/,
  );
});

Deno.test("a step moves to t - N // S, not to the next timestep; the last to 1 or, without set_alpha_to_one, abar[0]", () => {
  const s = diffusersDdimSteps(8, config());
  assert.deepEqual(s.timesteps, [0, 143, 285, 428, 571, 714, 856, 999]);
  assert.ok(close(s.alphasCumprod[7], abar[999], 1e-12));
  assert.ok(close(s.alphasCumprodPrev[7], abar[874], 1e-12), "999 moves to 874 while the next call is at 856");
  assert.equal(s.alphasCumprodPrev[0], 1);
  assert.ok(close(diffusersDdimSteps(8, config({ setAlphaToOne: false })).alphasCumprodPrev[0], abar[0], 1e-12));
});

Deno.test("training betas: linear ones are DiT's; scaled_linear ones are evenly spaced square roots", () => {
  assert.deepEqual(configBetas(config()), linearBetas());
  const scaled = configBetas(config({ betaSchedule: "scaled_linear", betaStart: 0.00085, betaEnd: 0.012 }));
  assert.ok(close(scaled[0], 0.00085, 1e-12) && close(scaled[999], 0.012, 1e-12));
  assert.ok(close(Math.sqrt(scaled[500]) - Math.sqrt(scaled[499]), (Math.sqrt(0.012) - Math.sqrt(0.00085)) / 999, 1e-9));
});

Deno.test("DiT's DDIM plan is the respaced schedule, unclipped; a PixArt plan clips x0 as clip_sample asks", () => {
  const dit = planDdim({ steps: 50 });
  const { schedule } = respace(50);
  assert.deepEqual([dit.alphasCumprod, dit.alphasCumprodPrev, dit.clipX0], [schedule.alphasCumprod, schedule.alphasCumprodPrev, null]);
  assert.equal(planDdim({ steps: 8, diffusers: config() }).clipX0, 1);
  assert.equal(planDdim({ steps: 8, diffusers: config({ clipSample: false }) }).clipX0, null);
  // x0 = (x - sqrt(1 - a) eps) / sqrt(a) = 4 is clipped to 1 before the step
  const x = new Float32Array([4 * Math.sqrt(0.5) + Math.sqrt(0.5) * 0.5]), eps = new Float32Array([0.5]);
  const clipped = ddimUpdate(x, eps, 0.5, 0.9, { clipX0: 1 })[0];
  assert.ok(close(clipped, Math.sqrt(0.9) * 1 + Math.sqrt(0.1) * 0.5, 1e-6));
  assert.ok(close(ddimUpdate(x, eps, 0.5, 0.9)[0], Math.sqrt(0.9) * 4 + Math.sqrt(0.1) * 0.5, 1e-6));
});

Deno.test("a PixArt DDIM run calls the model at diffusers' timesteps with FORA's step index", async () => {
  const shape: LatentShape = { batch: 1, channels: 1, height: 1, width: 2 };
  const calls: [number, number][] = [];
  const model: Denoiser = (x, step) => {
    calls.push([step.index, step.modelTime]);
    return Promise.resolve(new Float32Array(2 * x.length));
  };
  const xT = new Float32Array([3, -0.5]);
  const out = await sampleDdim(model, xT, planDdim({ steps: 8, diffusers: config() }), shape, []);
  assert.deepEqual(calls, [[7, 999], [6, 856], [5, 714], [4, 571], [3, 428], [2, 285], [1, 143], [0, 0]]);
  // eps 0: each step scales x by sqrt(abar' / abar) (> 1: abar' is abar at t - 125), x0 = x / sqrt(abar) clipped to [-1, 1]
  assert.ok(out.every((v) => Math.abs(v) <= 1), `clipped: ${out}`);
  const unclipped = await sampleDdim(model, xT, planDdim({ steps: 8, diffusers: config({ clipSample: false }) }), shape, []);
  assert.ok(unclipped[0] > 3, `unclipped: ${unclipped}`);
});
