import assert from "node:assert/strict";
import {
  dataPrediction,
  dpmSolverFirstUpdate,
  dpmSolverSecondUpdate,
  planDpmSolver,
  sampleDpmSolver,
} from "../../lib/samplers/dpm_solver.ts";
import { ddimUpdate } from "../../lib/samplers/ddim.ts";
import { vpAlpha, vpLogAlpha, vpSchedule, vpSigma } from "../../lib/samplers/schedule.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import type { Denoiser, LatentShape } from "../../lib/samplers/types.ts";
import { close, maxAbsDiff, toyModel } from "./helpers.ts";

const shape: LatentShape = { batch: 2, channels: 2, height: 2, width: 3 };
const vp = vpSchedule();
const abarOf = (t: number) => Math.exp(2 * vpLogAlpha(vp, t));

Deno.test("DPM-Solver++ plan: 20 time-uniform steps from t=1 to 1e-3, model times 999, 949.05, ... 49.95", () => {
  const plan = planDpmSolver();
  assert.equal(plan.times.length, 21);
  assert.equal(plan.times[0], 1);
  assert.equal(plan.times[20], 0.001);
  assert.equal(plan.modelTimes.length, 20);
  assert.equal(plan.modelTimes[0], 999);
  plan.modelTimes.forEach((m, k) => assert.ok(Math.abs(m - (999 - 49.95 * k)) < 1e-9, `k=${k}: ${m}`));
  // 20 steps >= 10: the reference keeps order 2 to the end; only the first step is order 1
  assert.deepEqual(plan.orders, [1, ...Array(19).fill(2)]);
});

Deno.test("lower_order_final: below 10 steps the last step is first order", () => {
  assert.deepEqual(planDpmSolver({ steps: 6 }).orders, [1, 2, 2, 2, 2, 1]);
  assert.deepEqual(planDpmSolver({ steps: 6, lowerOrderFinal: false }).orders, [1, 2, 2, 2, 2, 2]);
  assert.deepEqual(planDpmSolver({ steps: 12, lowerOrderFinalBelow: 15 }).orders, [1, ...Array(10).fill(2), 1]);
  assert.deepEqual(planDpmSolver({ steps: 5, order: 1 }).orders, [1, 1, 1, 1, 1]);
});

Deno.test("DPM-Solver++'s first step equals a DDIM step between the same times", async () => {
  const plan = planDpmSolver();
  const calls: { x: Float32Array; index: number; modelTime: number }[] = [];
  const xT = batchNormals(sampleRngs(3, 2), 12);
  await sampleDpmSolver(toyModel(shape, true, calls), xT, plan, shape, []);
  const out = await toyModel(shape, false)(xT, { k: 0, index: 19, modelTime: 999 });
  const ddim = ddimUpdate(xT, out, abarOf(plan.times[0]), abarOf(plan.times[1]));
  assert.ok(maxAbsDiff(calls[1].x, ddim) < 1e-6, `${maxAbsDiff(calls[1].x, ddim)}`);
  assert.ok(Math.abs(calls[1].modelTime - 949.05) < 1e-9);
  assert.deepEqual(calls.map((c) => c.index), [...Array(20).keys()].reverse());
});

Deno.test("the first-order update is DDIM for any pair of times", () => {
  const x = batchNormals(sampleRngs(6, 1), 12), eps = batchNormals(sampleRngs(7, 1), 12);
  for (const [s, t] of [[1, 0.95], [0.6, 0.2], [0.05, 0.001]]) {
    const dpm = dpmSolverFirstUpdate(vp, s, t, x, dataPrediction(vp, s, x, eps));
    assert.ok(maxAbsDiff(dpm, ddimUpdate(x, eps, abarOf(s), abarOf(t))) < 2e-6, `${s} -> ${t}`);
  }
});

Deno.test("the second-order update reduces to first order when both data predictions agree", () => {
  const x = batchNormals(sampleRngs(8, 1), 12), x0 = batchNormals(sampleRngs(9, 1), 12);
  for (const solver of ["midpoint", "taylor"] as const) {
    const two = dpmSolverSecondUpdate(vp, 0.8, 0.7, 0.6, x, x0, x0, solver);
    assert.deepEqual(two, dpmSolverFirstUpdate(vp, 0.7, 0.6, x, x0));
  }
});

Deno.test("DPM-Solver++ with a perfect denoiser lands on alpha x0 + sigma n at t = 1e-3", async () => {
  const rngs = sampleRngs(10, 2);
  const x0 = batchNormals(rngs, 12), n = batchNormals(rngs, 12);
  const xT = x0.map((v, j) => vpAlpha(vp, 1) * v + vpSigma(vp, 1) * n[j]);
  const model: Denoiser = (x, { modelTime }) => {
    const t = modelTime / 1000 + 1 / vp.totalN, a = vpAlpha(vp, t), s = vpSigma(vp, t);
    return Promise.resolve(x.map((v, j) => (v - a * x0[j]) / s));
  };
  const plan = planDpmSolver({ learnSigma: false });
  const got = await sampleDpmSolver(model, xT, plan, shape, []);
  const want = x0.map((v, j) => vpAlpha(vp, 1e-3) * v + vpSigma(vp, 1e-3) * n[j]);
  assert.ok(maxAbsDiff(got, want) < 1e-4, `${maxAbsDiff(got, want)}`);
});

Deno.test("logSNR spacing is uniform in lambda", () => {
  const plan = planDpmSolver({ steps: 10, skipType: "logSNR" });
  assert.ok(close(plan.times[0], 1, 1e-9) && close(plan.times[10], 1e-3, 1e-9));
  assert.ok(plan.times.every((t, k) => k === 0 || t < plan.times[k - 1]));
});
