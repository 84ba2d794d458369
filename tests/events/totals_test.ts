import assert from "node:assert/strict";
import { roundMs, stamper } from "../../lib/events/stamp.ts";
import { speedupEstimate, summarizeSteps } from "../../lib/events/totals.ts";
import type { ForaEvent } from "../../lib/events/types.ts";

Deno.test("speed-up estimate is S·mean_full / (full·mean_full + reuse·mean_reuse)", () => {
  const t = summarizeSteps([
    { kind: "full", ms: 90 },
    { kind: "reuse", ms: 15 },
    { kind: "reuse", ms: 25 },
    { kind: "full", ms: 110 },
    { kind: "reuse", ms: 20 },
  ]);
  assert.equal(t.full_steps, 2);
  assert.equal(t.reuse_steps, 3);
  // mean_full 100, mean_reuse 20: 5·100 / (2·100 + 3·20)
  assert.ok(Math.abs(t.speedup_estimate! - 500 / 260) < 1e-12);
});

Deno.test("speed-up is 1 with no reuse steps and unknown (null) with no full step", () => {
  assert.equal(speedupEstimate(4, 400, 0, 0), 1);
  assert.equal(speedupEstimate(0, 0, 3, 30), null);
  assert.equal(speedupEstimate(0, 0, 0, 0), null);
  assert.equal(
    speedupEstimate(2, 0, 2, 0),
    null,
    "all-zero times give no estimate, not NaN",
  );
  assert.deepEqual(summarizeSteps([]), {
    full_steps: 0,
    reuse_steps: 0,
    speedup_estimate: null,
  });
});

Deno.test("stamper gives every event the run's id and ms since the run started, tag first", () => {
  let clock = 1000;
  const seen: ForaEvent[] = [];
  const run = stamper((e) => seen.push(e), { runId: "r1", now: () => clock });
  clock = 1012.5;
  run.emit({ event: "cache", index: 0, attn: "H", mlp: "M" });
  clock = 1020.1234567;
  run.emit({
    event: "step",
    index: 0,
    k: 1,
    timestep: 0,
    kind: "reuse",
    ms: 7,
  });
  assert.deepEqual(seen.map((e) => [e.run_id, e.time_ms]), [["r1", 12.5], [
    "r1",
    20.123,
  ]]);
  assert.deepEqual(Object.keys(seen[0]), [
    "event",
    "run_id",
    "time_ms",
    "index",
    "attn",
    "mlp",
  ]);
  assert.equal(run.elapsedMs(), 20.123);
  assert.equal(roundMs(0.0004), 0);
});

Deno.test("run ids are fresh per run unless given", () => {
  const a = stamper(() => {}).runId, b = stamper(() => {}).runId;
  assert.notEqual(a, b);
  assert.match(a, /^[0-9a-f-]{36}$/);
});
