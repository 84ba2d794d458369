/**
 * Schedule values. Expected numbers come from reference_golden.json (DiT's own diffusion package,
 * see reference_samplers.py) or are stated with their derivation.
 */
import assert from "node:assert/strict";
import {
  discreteSchedule,
  linearBetas,
  respace,
  roundHalfEven,
  spaceTimesteps,
  vpAlpha,
  vpInverseLambda,
  vpLambda,
  vpLogAlpha,
  vpModelTime,
  vpSchedule,
} from "../../lib/samplers/schedule.ts";
import { ForaError } from "../../lib/errors.ts";
import { close } from "./helpers.ts";

const golden = JSON.parse(await Deno.readTextFile(new URL("./reference_golden.json", import.meta.url)));

function executionOrder(steps: number): number[] {
  return spaceTimesteps(1000, steps).reverse();
}

Deno.test("respaced timesteps for S=250 run 999, 995, 991, ... 8, 4, 0", () => {
  const ts = executionOrder(250);
  assert.equal(ts.length, 250);
  assert.deepEqual(ts.slice(0, 3), [999, 995, 991]);
  assert.deepEqual(ts.slice(-3), [8, 4, 0]);
});

Deno.test("respaced timesteps for S=100, 50 and 20: first and last", () => {
  assert.deepEqual(executionOrder(100).slice(0, 3), [999, 989, 979]);
  assert.deepEqual(executionOrder(50).slice(0, 3), [999, 979, 958]);
  assert.deepEqual(executionOrder(50).slice(-3), [41, 20, 0]);
  assert.deepEqual(executionOrder(20).slice(0, 3), [999, 946, 894]);
  assert.deepEqual(executionOrder(20).slice(-3), [105, 53, 0]);
  for (const s of [100, 50, 20]) assert.equal(executionOrder(s).length, s);
});

Deno.test("spaceTimesteps equals DiT's space_timesteps for S = 250, 100, 50, 21, 20", () => {
  for (const [s, want] of Object.entries(golden.spaced)) assert.deepEqual(spaceTimesteps(1000, Number(s)), want, `S=${s}`);
});

Deno.test("DESIGN's round(k*999/(S-1)) agrees with the reference at S=250/100/50/20 but not at S=21", () => {
  const closedForm = (s: number) =>
    [...new Set(Array.from({ length: s }, (_, k) => roundHalfEven(k * 999 / (s - 1))))].sort((a, b) => a - b);
  for (const s of [10, 20, 25, 50, 100, 250, 1000]) assert.deepEqual(closedForm(s), spaceTimesteps(1000, s), `S=${s}`);
  // the reference accumulates the stride: 10 additions of 49.95 give 499.49999999999994 -> 499
  assert.equal(spaceTimesteps(1000, 21)[10], 499);
  assert.equal(closedForm(21)[10], 500);
});

Deno.test("multi-section respacing follows space_timesteps' docstring example", () => {
  // 300 steps, sections [10, 15, 20]: strides 99/9, 99/14, 99/19 within 0-99, 100-199, 200-299
  const ts = spaceTimesteps(300, [10, 15, 20]);
  assert.equal(ts.length, 45);
  assert.deepEqual(ts.slice(0, 3), [0, 11, 22]);
  assert.deepEqual([ts[9], ts[10], ts[24], ts[25], ts[44]], [99, 100, 199, 200, 299]);
  assert.throws(() => spaceTimesteps(100, [60, 60]), ForaError);
});

Deno.test("roundHalfEven rounds like Python's round()", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999999999999996, 2.5000000000000004].map(roundHalfEven), [0, 2, 2, 4, 0, -2, 2, 3]);
});

Deno.test("linear betas equal numpy's linspace(1e-4, 0.02, 1000) bit for bit", () => {
  const b = linearBetas();
  assert.equal(b.length, 1000);
  assert.deepEqual([b[0], b[1], b[2], b[998], b[999]], golden.linear_betas);
  assert.equal(b[0], 1e-4);
  assert.equal(b[999], 0.02);
});

Deno.test("SpacedDiffusion's recomputed betas and alphas_cumprod (1000 and 250 steps)", () => {
  const full = respace(1000).schedule;
  assert.deepEqual([full.betas[0], full.betas[1], full.betas[999]], golden.spaced1000.betas);
  assert.deepEqual([full.alphasCumprod[0], full.alphasCumprod[1], full.alphasCumprod[999]], golden.spaced1000.alphas_cumprod);
  // abar_999 of the linear schedule: prod(1 - beta) = 4.0358e-5
  assert.ok(close(full.alphasCumprod[999], 4.035829765375676e-5, 1e-14));
  const s = respace(250).schedule, g = golden.spaced250;
  const pick = (a: Float64Array, idx: number[]) => idx.map((i) => a[i]);
  const near = (got: number[], want: number[]) => got.forEach((v, k) => assert.ok(close(v, want[k], 1e-13), `${v} vs ${want[k]}`));
  near(pick(s.betas, [0, 1, 2, 248, 249]), g.betas);
  near(pick(s.alphasCumprod, [0, 1, 249]), g.alphas_cumprod);
  near(pick(s.posteriorLogVarianceClipped, [0, 1, 2, 249]), g.posterior_log_variance_clipped);
  near(pick(s.posteriorMeanCoef1, [0, 1, 249]), g.posterior_mean_coef1);
  near(pick(s.posteriorMeanCoef2, [0, 1, 249]), g.posterior_mean_coef2);
});

Deno.test("posterior coefficients satisfy their definitions", () => {
  const s = discreteSchedule(linearBetas());
  assert.equal(s.alphasCumprodPrev[0], 1);
  assert.equal(s.posteriorVariance[0], 0);
  assert.equal(s.posteriorLogVarianceClipped[0], s.posteriorLogVarianceClipped[1]);
  assert.equal(s.fixedLargeLogVariance[0], Math.log(s.posteriorVariance[1]));
  assert.equal(s.fixedLargeLogVariance[7], Math.log(s.betas[7]));
  for (const i of [1, 500, 999]) {
    // mean of q(x_{t-1} | x_t, x0): coef1 + coef2 sqrt(abar_t) = sqrt(abar_{t-1}) so that x0 maps to itself
    const lhs = s.posteriorMeanCoef1[i] + s.posteriorMeanCoef2[i] * Math.sqrt(s.alphasCumprod[i]);
    assert.ok(close(lhs, Math.sqrt(s.alphasCumprodPrev[i]), 1e-13));
  }
});

Deno.test("the continuous VP schedule passes through the discrete one at t_n = (n+1)/1000", () => {
  const vp = vpSchedule(), s = discreteSchedule(linearBetas());
  assert.equal(vp.totalN, 1000);
  for (const n of [0, 1, 499, 998, 999]) {
    assert.ok(close(2 * vpLogAlpha(vp, (n + 1) / 1000), Math.log(s.alphasCumprod[n]), 1e-12), `n=${n}`);
  }
  // halfway between two grid points: the average of log alphas
  const mid = vpLogAlpha(vp, 0.5005);
  assert.ok(close(mid, (vpLogAlpha(vp, 0.5) + vpLogAlpha(vp, 0.501)) / 2, 1e-12));
  assert.ok(close(vpAlpha(vp, 1) ** 2, s.alphasCumprod[999], 1e-12));
  // lambda at t=1 is -5.06: above the -5.1 clip, so nothing is dropped
  assert.ok(close(vpLambda(vp, 1), -5.0591, 1e-4));
});

Deno.test("model time 1000 (t - 1/N): 999 at t=1, 0 at t=1e-3", () => {
  const vp = vpSchedule();
  assert.equal(vpModelTime(vp, 1), 999);
  assert.ok(Math.abs(vpModelTime(vp, 1e-3)) < 1e-12);
});

Deno.test("inverse lambda undoes lambda", () => {
  const vp = vpSchedule();
  for (const t of [1, 0.9, 0.5, 0.123, 0.01, 0.001]) assert.ok(close(vpInverseLambda(vp, vpLambda(vp, t)), t, 1e-9), `t=${t}`);
});

Deno.test("bad step counts are usage errors", () => {
  assert.throws(() => respace(0), ForaError);
  assert.throws(() => respace(1001), ForaError);
  assert.throws(() => respace(2.5), ForaError);
  assert.throws(() => respace(1), ForaError);
});
