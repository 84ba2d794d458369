/**
 * Recompute schedules as files: the plan of a run (full or reuse for each step, in
 * execution order) written by `fora similarity --suggest-schedule FILE.json` and read by
 * `fora generate --schedule FILE.json`, which then runs exactly that plan (the schedule
 * policy of policy.ts, its kinds and params the file's).
 *
 *   {
 *     "format": "fora-schedule", "version": 1,
 *     "steps": 4,
 *     "kinds": ["full", "reuse", "reuse", "full"],
 *     "policy": { "name": "schedule", "params": { "threshold": 0.95, "full_steps": 2 } },
 *     "source": { ... how it was made: any JSON, informational only ... }
 *   }
 *
 * The first step must be full (there is nothing cached before it).
 */
import { ForaError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { reasonOf } from "../io/atomic.ts";
import { countFull, type StepKind } from "./policy.ts";
import { TRAIN_TIMESTEPS } from "../samplers/schedule.ts";

export const SCHEDULE_FORMAT = "fora-schedule";
export const SCHEDULE_VERSION = 1;
export const SCHEDULE_POLICY = "schedule";
/** A 1000-step schedule is about 10 KB; the cap leaves room for a large "source" note. */
export const MAX_SCHEDULE_BYTES = 1024 * 1024;

export interface ScheduleFile {
  format: typeof SCHEDULE_FORMAT;
  version: typeof SCHEDULE_VERSION;
  steps: number;
  kinds: StepKind[];
  policy: { name: typeof SCHEDULE_POLICY; params: Record<string, number> };
  source?: unknown;
}

/** The plan a schedule file describes; its policy is "schedule" with the file's parameters. */
export function scheduleFile(kinds: StepKind[], params: Record<string, number>, source?: unknown): ScheduleFile {
  checkKinds(kinds, "schedule");
  return {
    format: SCHEDULE_FORMAT,
    version: SCHEDULE_VERSION,
    steps: kinds.length,
    kinds,
    policy: { name: SCHEDULE_POLICY, params: { ...params, full_steps: countFull(kinds) } },
    ...(source === undefined ? {} : { source }),
  };
}

export async function writeScheduleFile(path: string, file: ScheduleFile): Promise<void> {
  // One step kind per line would make a 250-step file 250 lines long: keep the list on one.
  const text = JSON.stringify({ ...file, kinds: "\u0000" }, null, 2).replace('"\\u0000"', JSON.stringify(file.kinds));
  await writeFileAtomic(path, [new TextEncoder().encode(text + "\n")], "schedule");
}

/** Reads and checks a schedule file; errors name the file and what is wrong with it. */
export async function readScheduleFile(path: string): Promise<ScheduleFile> {
  let text: string;
  try {
    // A device (/dev/zero) or a huge file would be read until memory runs out.
    const st = await Deno.stat(path);
    if (!st.isFile) throw new ForaError("io", `--schedule ${path}: not a regular file; give the .json file fora similarity wrote`);
    if (st.size > MAX_SCHEDULE_BYTES) {
      throw new ForaError("io", `--schedule ${path}: ${st.size} bytes, more than the ${MAX_SCHEDULE_BYTES} a schedule file may hold`);
    }
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof ForaError) throw e;
    throw new ForaError("io", `--schedule ${path}: cannot read it: ${e instanceof Deno.errors.NotFound ? "no such file" : reasonOf(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(path, `not JSON (${(e as Error).message})`);
  }
  return checkScheduleFile(json, path);
}

export function checkScheduleFile(json: unknown, path: string): ScheduleFile {
  if (!json || typeof json !== "object" || Array.isArray(json)) throw bad(path, "expected a JSON object");
  const o = json as Record<string, unknown>;
  if (o.format !== SCHEDULE_FORMAT) throw bad(path, `"format" must be "${SCHEDULE_FORMAT}"`);
  if (o.version !== SCHEDULE_VERSION) {
    throw bad(path, `"version" ${JSON.stringify(o.version)} is not supported (this fora reads version ${SCHEDULE_VERSION})`);
  }
  if (!Array.isArray(o.kinds) || o.kinds.some((k) => k !== "full" && k !== "reuse")) {
    throw bad(path, `"kinds" must be a list of "full" and "reuse"`);
  }
  const kinds = o.kinds as StepKind[];
  try {
    checkKinds(kinds, path);
  } catch (e) {
    throw bad(path, (e as Error).message);
  }
  if (o.steps !== kinds.length) throw bad(path, `"steps" is ${JSON.stringify(o.steps)} but "kinds" lists ${kinds.length} steps`);
  const params: Record<string, number> = {};
  const policy = o.policy as Record<string, unknown> | undefined;
  if (policy !== undefined) {
    const p = policy?.params;
    if (p !== undefined && (typeof p !== "object" || p === null || Array.isArray(p))) throw bad(path, `"policy.params" must be an object`);
    for (const [k, v] of Object.entries((p ?? {}) as Record<string, unknown>)) {
      if (typeof v !== "number" || !Number.isFinite(v)) throw bad(path, `"policy.params.${k}" must be a number`);
      params[k] = v;
    }
  }
  return scheduleFile(kinds, params, o.source);
}

/** The step count of a run with this schedule: its own, or `--steps` when that agrees. */
export function stepsForSchedule(file: ScheduleFile, path: string, steps?: number): number {
  if (steps !== undefined && steps !== file.steps) {
    throw new ForaError(
      "usage",
      `--steps ${steps} does not match --schedule ${path}, which plans ${file.steps} steps; leave --steps out or make a schedule for ${steps} steps`,
    );
  }
  return file.steps;
}

function checkKinds(kinds: StepKind[], where: string): void {
  if (kinds.length === 0) throw new ForaError("usage", `${where}: a schedule needs at least one step`);
  if (kinds.length > TRAIN_TIMESTEPS) {
    throw new ForaError(
      "usage",
      `${where}: a schedule of ${kinds.length} steps; the models are trained on ${TRAIN_TIMESTEPS} timesteps, plan at most that many`,
    );
  }
  if (kinds[0] !== "full") throw new ForaError("usage", `${where}: the first step must be "full" (nothing is cached before it)`);
}

function bad(path: string, what: string): ForaError {
  // JSON.parse quotes the file's text: escape its control characters (newlines, terminal
  // escape sequences) so that the error stays one printable line.
  // deno-lint-ignore no-control-regex
  const printable = what.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return new ForaError("usage", `--schedule ${path}: not a fora schedule: ${printable}`);
}
