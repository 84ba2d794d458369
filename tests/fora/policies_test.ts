/**
 * Cache policies decide as documented: on scripted indicator sequences (a fake step model
 * whose probe values are chosen by the test), with warm-up, cool-down and the reuse cap,
 * and forecasting reduces to plain reuse when the last two full computations agree.
 */
import { strict as assert } from "node:assert";
import {
  decide,
  describePolicy,
  dynamicPolicy,
  forecastPolicy,
  guardKinds,
  horizon,
  partialPolicy,
  plannedKinds,
  relativeL1,
  reusedBlocks,
  staticPolicy,
  type StepKind,
} from "../../lib/fora/policy.ts";
import { residualDenoiser, type StepReport } from "../../lib/fora/denoiser.ts";
import type { StepModel } from "../../lib/fora/step_model.ts";

const F = "full", R = "reuse";

Deno.test("guards: warm-up and cool-down steps are full, and no more than max-reuse reuse steps run in a row", () => {
  const kinds = Array<StepKind>(12).fill(R);
  kinds[0] = F;
  assert.deepEqual(guardKinds(kinds, { warmup: 2, cooldown: 3, maxReuse: 2 }), [F, F, R, R, F, R, R, F, R, F, F, F]);
  // Without guards a plan stays as it is, except that the first step is always full.
  assert.deepEqual(guardKinds([R, R, F, R], {}), [F, R, F, R]);
  const p = staticPolicy(10, 5, { maxReuse: 2 });
  assert.deepEqual(plannedKinds(p), [F, R, R, F, F, R, R, F, R, F]);
  assert.deepEqual(describePolicy(p).params, { interval: 5, max_reuse: 2 });
  assert.deepEqual(horizon(p, 0), [1, 2]);
  assert.throws(() => guardKinds(kinds, { maxReuse: 0 }), /--max-reuse/);
});

Deno.test("static policy: the decision of every step is its plan's", () => {
  const p = staticPolicy(9, 3);
  let lastFull = -1;
  const kinds = plannedKinds(p).map((_, k) => {
    const d = decide(p, k, lastFull);
    if (d === F) lastFull = k;
    return d;
  });
  assert.deepEqual(kinds, plannedKinds(staticPolicy(9, 3)));
});

Deno.test("dynamic policy: reuses while the accumulated indicator stays below the threshold, within the lookahead", () => {
  const p = dynamicPolicy(10, 0.3, 3, { warmup: 1, cooldown: 2 });
  assert.deepEqual(plannedKinds(p), [F, "decide", "decide", "decide", "decide", "decide", "decide", "decide", F, F]);
  // Scripted per-step changes; the sum restarts at every full step.
  const changes = [0, 0.1, 0.1, 0.2, 0.05, 0.05, 0.05, 0.05, 0, 0];
  let lastFull = -1, acc = 0;
  const kinds = changes.map((c, k) => {
    acc += c;
    const d = decide(p, k, lastFull, acc);
    if (d === F) (lastFull = k), (acc = 0);
    return d;
  });
  // k=1: 0.1 R; k=2: 0.2 R; k=3: 0.4 >= 0.3 F; k=4..6: 0.05..0.15 R (3 = lookahead);
  // k=7: outside the lookahead of the full step at 3: F; then the cool-down.
  assert.deepEqual(kinds, [F, R, R, F, R, R, R, F, F, F]);
  assert.deepEqual(horizon(p, 3), [4, 5, 6]);
  assert.deepEqual(horizon(p, 7), []);
  // max-reuse caps the lookahead.
  assert.deepEqual(horizon(dynamicPolicy(10, 0.3, 5, { maxReuse: 2 }), 0), [1, 2]);
  // Threshold 0 plans every step full: no indicator, no residuals.
  const none = dynamicPolicy(6, 0, 3);
  assert.deepEqual(plannedKinds(none), Array(6).fill(F));
  assert.deepEqual(horizon(none, 0), []);
});

Deno.test("forecast policy: a full step's horizon reaches through the next cycle", () => {
  const p = forecastPolicy(10, 3);
  assert.deepEqual(plannedKinds(p), plannedKinds(staticPolicy(10, 3)));
  // Full at 0, 3, 6, 9: the full step at 0 serves 1, 2 and (forecast with the one at 3) 4, 5.
  assert.deepEqual(horizon(p, 0), [1, 2, 4, 5]);
  assert.deepEqual(horizon(p, 6), [7, 8]);
});

Deno.test("partial policy: B blocks at either end computed, at least one reused", () => {
  assert.deepEqual(reusedBlocks(partialPolicy(10, 3, { end: "last", blocks: 2 }, 4), 4), [true, true, false, false]);
  assert.deepEqual(reusedBlocks(partialPolicy(10, 3, { end: "first", blocks: 1 }, 4), 4), [false, true, true, true]);
  assert.deepEqual(reusedBlocks(forecastPolicy(10, 3), 4), [true, true, true, true]);
  assert.deepEqual(describePolicy(partialPolicy(10, 3, { end: "first", blocks: 1 }, 4)).params, { interval: 3, compute_first: 1 });
  assert.throws(() => partialPolicy(10, 3, { end: "last", blocks: 4 }, 4), /--compute-last must be a whole number from 1 to 3/);
  assert.throws(() => partialPolicy(10, 3, { end: "first", blocks: 0 }, 4), /--compute-first must be a whole number from 1 to 3/);
});

Deno.test("relativeL1 is TeaCache's |a-b|_1/|b|_1", () => {
  assert.equal(relativeL1(Float32Array.of(1, -3), Float32Array.of(2, -2)), 2 / 4);
  assert.equal(relativeL1(Float32Array.of(0), Float32Array.of(0)), 0);
});

/**
 * A step model whose arithmetic the test can follow: one value per feature. `full` at
 * position p emits R_j = base(p) + t_j; the probe of each step is scripted.
 */
function fakeModel(probes: number[], base: (fullCount: number) => number, times: number[]) {
  const calls: string[] = [];
  const reused: number[] = [];
  let fulls = 0;
  const kOf = (t: number) => times.indexOf(t);
  const model: StepModel = {
    depth: 2,
    batch: 1,
    modelBatch: 1,
    featureSize: 1,
    full(x, t, reuseTimes) {
      calls.push(`F${kOf(t)}`);
      const b = base(fulls++);
      return Promise.resolve({ out: x, residuals: Float32Array.from(reuseTimes, (tj) => b + tj) });
    },
    reuse(x, t, residuals, j = 0) {
      calls.push(`R${kOf(t)}`);
      reused.push(residuals[j]);
      return Promise.resolve(x);
    },
    partial: {
      full(x, t, reuseTimes) {
        calls.push(`F${kOf(t)}`);
        const b = base(fulls++);
        return Promise.resolve({ out: x, residuals: Float32Array.from(reuseTimes, (tj) => b + tj) });
      },
      reuse(x, t, residual) {
        calls.push(`R${kOf(t)}`);
        reused.push(residual[0]);
        return Promise.resolve(x);
      },
    },
    probe(_x, t) {
      calls.push(`P${kOf(t)}`);
      return Promise.resolve(Float32Array.of(probes[kOf(t)]));
    },
    blocks() {
      throw new Error("not used");
    },
  };
  return { model, calls, reused };
}

async function drive(model: StepModel, policy: Parameters<typeof residualDenoiser>[1], times: number[]): Promise<StepReport[]> {
  const reports: StepReport[] = [];
  const d = residualDenoiser(model, policy, times, (r) => reports.push(r));
  for (let k = 0; k < times.length; k++) await d(new Float32Array(1), { k, index: times.length - 1 - k, modelTime: times[k] });
  return reports;
}

Deno.test("dynamic policy over a step model: the probe runs first, a step reuses until the summed indicator crosses the threshold", async () => {
  const times = [900, 800, 700, 600, 500, 400, 300, 200];
  // Relative changes from step to step: 0.1, 0.1, 0.3, 0.05, 0.05, 0.05, 0.
  const probes = [1, 1.1, 1.21, 1.573, 1.65165, 1.7342325, 1.820944125, 1.820944125];
  const { model, calls } = fakeModel(probes, () => 0, times);
  const reports = await drive(model, dynamicPolicy(8, 0.25, 4, { cooldown: 1 }), times);
  assert.deepEqual(reports.map((r) => r.kind), [F, R, R, F, R, R, R, F]);
  // Step 3: 0.1 + 0.1 + 0.3 >= 0.25: full. Step 7: the cool-down.
  assert.deepEqual(calls, ["P0", "F0", "P1", "R1", "P2", "R2", "P3", "F3", "P4", "R4", "P5", "R5", "P6", "R6", "P7", "F7"]);
  assert.ok(Math.abs(reports[3].indicator! - 0.5) < 1e-6);
  assert.ok(Math.abs(reports[2].indicator! - 0.2) < 1e-6);
  // The events see the decision like static FORA's: reuse steps hit every block.
  assert.deepEqual(reports[1].attnHits, [true, true]);
  assert.deepEqual(reports[3].attnHits, [false, false]);
});

Deno.test("forecast from two identical full computations equals plain reuse", async () => {
  const times = [900, 800, 700, 600, 500, 400, 300];
  const plain = fakeModel([], () => 5, times);
  const fore = fakeModel([], () => 5, times);
  const a = await drive(plain.model, staticPolicy(7, 3), times);
  const b = await drive(fore.model, forecastPolicy(7, 3), times);
  assert.deepEqual(a.map((r) => r.kind), b.map((r) => r.kind));
  assert.deepEqual(fore.reused, plain.reused);
  assert.ok(b.some((r) => r.forecast), "the later cycles were forecast");
});

Deno.test("forecast extrapolates the residual linearly in the step distance", async () => {
  const times = [900, 800, 700, 600, 500, 400, 300];
  // Full steps at 0, 3, 6 (S=7, N=3); the n-th full computation has base 10 n.
  const { model, reused } = fakeModel([], (n) => 10 * n, times);
  await drive(model, forecastPolicy(7, 3), times);
  // Steps 1, 2: only one full step so far: plain reuse (base 0). Steps 4, 5: from
  // p0 = 0 (base 0) and p1 = 3 (base 10): a = (m - 3)/3, R = (1 + a) (10 + t) - a t.
  const f = (m: number) => (1 + (m - 3) / 3) * (10 + times[m]) - ((m - 3) / 3) * times[m];
  assert.deepEqual(reused, [times[1], times[2], f(4), f(5)].map(Math.fround));
});

Deno.test("warm-up, cool-down and the cap hold over a run", async () => {
  const times = Array.from({ length: 12 }, (_, k) => 1000 - k);
  const { model } = fakeModel([], () => 0, times);
  const reports = await drive(model, staticPolicy(12, 6, { warmup: 2, cooldown: 2, maxReuse: 2 }), times);
  const kinds = reports.map((r) => r.kind);
  assert.deepEqual(kinds.slice(0, 2), [F, F]);
  assert.deepEqual(kinds.slice(-2), [F, F]);
  assert.ok(!kinds.join("").includes("reusereusereuse"));
});
