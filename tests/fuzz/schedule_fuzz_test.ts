/**
 * Fuzz target: the schedule loader (lib/fora/schedule_file.ts), which reads the plan that
 * `fora generate --schedule FILE.json` runs. Cases: a valid schedule with values replaced or
 * keys deleted at random places; arbitrary JSON; the file's text with byte-level mutations,
 * read from disk. An accepted schedule must be a runnable plan (at least one step, the first
 * full, steps == kinds.length, finite parameters); anything else must be a one-line ForaError.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkScheduleFile, readScheduleFile, type ScheduleFile } from "../../lib/fora/schedule_file.ts";
import { plannedKinds, schedulePolicy } from "../../lib/fora/policy.ts";
import { attempt, fuzz, mutated, mutatedJson, scratchFile, show } from "./fuzz.ts";

const valid = {
  format: "fora-schedule",
  version: 1,
  steps: 6,
  kinds: ["full", "reuse", "reuse", "full", "reuse", "full"],
  policy: { name: "schedule", params: { threshold: 0.95, full_steps: 3 } },
  source: { command: "fora similarity", model: "bundle" },
};
const validText = new TextEncoder().encode(JSON.stringify(valid, null, 2));
const scratch = await scratchFile("schedule.json");

function checkAccepted(s: ScheduleFile): void {
  assert.ok(s.kinds.length >= 1 && s.kinds[0] === "full", "a runnable plan starts with a full step");
  assert.equal(s.steps, s.kinds.length);
  assert.ok(s.kinds.every((k) => k === "full" || k === "reuse"));
  for (const v of Object.values(s.policy.params)) assert.ok(Number.isFinite(v));
  const plan = plannedKinds(schedulePolicy(s.kinds, s.policy.params));
  assert.equal(plan.length, s.steps);
}

type Case = { kind: "json"; json: unknown } | { kind: "text"; bytes: Uint8Array };
const cases: fc.Arbitrary<Case> = fc.oneof(
  { arbitrary: mutatedJson(valid).map((json): Case => ({ kind: "json", json })), weight: 5 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((json): Case => ({ kind: "json", json })), weight: 1 },
  {
    arbitrary: fc.array(fc.constantFrom("full", "reuse"), { maxLength: 300 })
      .map((kinds): Case => ({ kind: "json", json: { ...valid, steps: kinds.length, kinds } })),
    weight: 1,
  },
  { arbitrary: mutated(validText).map((bytes): Case => ({ kind: "text", bytes })), weight: 3 },
);

Deno.test("fuzz: the schedule loader returns a runnable plan or a typed one-line error", async () => {
  try {
    await fuzz(cases, async (c) => {
      const codes = ["usage", "io"];
      if (c.kind === "json") {
        const r = await attempt(() => checkScheduleFile(c.json, "schedule.json"), codes, () => JSON.stringify(c.json));
        if (!r.ok) return "rejected";
        checkAccepted(r.value);
        return "accepted";
      }
      scratch.write(c.bytes);
      const r = await attempt(() => readScheduleFile(scratch.path), codes, () => show(c.bytes));
      if (!r.ok) return "rejected";
      checkAccepted(r.value);
      return "accepted";
    });
  } finally {
    await scratch.cleanup();
  }
});
