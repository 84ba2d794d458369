/** Suggested recompute schedules (lib/similarity/schedule.ts) and schedule files (lib/fora/schedule_file.ts). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { suggestSchedule } from "../../lib/similarity/schedule.ts";
import type { Track } from "../../lib/similarity/run.ts";
import { describePolicy, plannedKinds, schedulePolicy } from "../../lib/fora/policy.ts";
import { readScheduleFile, scheduleFile, stepsForSchedule, writeScheduleFile } from "../../lib/fora/schedule_file.ts";
import { freshDir } from "./helpers.ts";

/** A track whose similarity between steps i and j is decay^|i-j|. */
function decaying(S: number, decay: number, layer = 0): Track {
  const m = new Float64Array(S * S);
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) m[i * S + j] = decay ** Math.abs(i - j);
  return { layer, branch: "attn", matrix: m };
}

Deno.test("a step reuses while its similarity to the last full step stays above the threshold", () => {
  // 0.9^1 = 0.9, 0.9^2 = 0.81: with threshold 0.85 every other step is full.
  assert.deepEqual(suggestSchedule([decaying(6, 0.9)], 6, { threshold: 0.85, aggregate: "mean" }), [
    "full",
    "reuse",
    "full",
    "reuse",
    "full",
    "reuse",
  ]);
  // 0.81 >= 0.8 but 0.729 < 0.8: two reuse steps after each full one.
  assert.deepEqual(suggestSchedule([decaying(7, 0.9)], 7, { threshold: 0.8, aggregate: "mean" }), [
    "full",
    "reuse",
    "reuse",
    "full",
    "reuse",
    "reuse",
    "full",
  ]);
  assert.deepEqual(suggestSchedule([decaying(4, 0.9)], 4, { threshold: 1, aggregate: "mean" }), ["full", "full", "full", "full"]);
  assert.deepEqual(suggestSchedule([decaying(4, 1)], 4, { threshold: 0.99, aggregate: "mean", maxReuse: 2 }), [
    "full",
    "reuse",
    "reuse",
    "full",
  ]);
});

Deno.test("min aggregates by the least similar layer, mean by the average", () => {
  const tracks = [decaying(3, 0.99), decaying(3, 0.8, 1)];
  // Step 1: mean (0.99 + 0.8) / 2 = 0.895, min 0.8.
  assert.deepEqual(suggestSchedule(tracks, 3, { threshold: 0.85, aggregate: "mean" }).slice(0, 2), ["full", "reuse"]);
  assert.deepEqual(suggestSchedule(tracks, 3, { threshold: 0.85, aggregate: "min" }).slice(0, 2), ["full", "full"]);
});

Deno.test("a schedule file round-trips; broken ones are refused with the reason", async () => {
  const dir = await freshDir("schedule");
  const path = join(dir, "s.json");
  const file = scheduleFile(["full", "reuse", "reuse", "full"], { threshold: 0.9 }, { made_by: "test" });
  await writeScheduleFile(path, file);
  const text = await Deno.readTextFile(path);
  assert.match(text, /"kinds": \["full","reuse","reuse","full"\]/, "the step list stays on one line");
  const back = await readScheduleFile(path);
  assert.deepEqual(back, file);
  const policy = schedulePolicy(back.kinds, back.policy.params);
  assert.deepEqual({ policy: describePolicy(policy), kinds: plannedKinds(policy) }, {
    policy: { name: "schedule", params: { threshold: 0.9, full_steps: 2 } },
    kinds: ["full", "reuse", "reuse", "full"],
  });
  assert.equal(stepsForSchedule(back, path), 4);
  assert.equal(stepsForSchedule(back, path, 4), 4);
  assert.throws(() => stepsForSchedule(back, path, 5), /--steps 5 does not match --schedule .*4 steps/);
  const bad = async (json: unknown, message: RegExp) => {
    await Deno.writeTextFile(path, typeof json === "string" ? json : JSON.stringify(json));
    await assert.rejects(readScheduleFile(path), message);
  };
  const ok = { format: "fora-schedule", version: 1, steps: 2, kinds: ["full", "reuse"] };
  await bad("{", /not a fora schedule: not JSON/);
  await bad({ ...ok, format: "x" }, /"format" must be "fora-schedule"/);
  await bad({ ...ok, version: 2 }, /"version" 2 is not supported/);
  await bad({ ...ok, kinds: ["reuse", "full"] }, /first step must be "full"/);
  await bad({ ...ok, kinds: ["full", "maybe"] }, /"kinds" must be a list/);
  await bad({ ...ok, steps: 3 }, /"steps" is 3 but "kinds" lists 2 steps/);
  await bad({ ...ok, policy: { name: "schedule", params: { threshold: "high" } } }, /"policy.params.threshold" must be a number/);
  await assert.rejects(readScheduleFile(join(dir, "missing.json")), /cannot read it: no such file/);
});
