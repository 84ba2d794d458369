/** Events for the tests: one fully populated example of each kind, and a whole simulated run. */
import { stamper } from "../../lib/events/stamp.ts";
import { type StepTime, summarizeSteps } from "../../lib/events/totals.ts";
import {
  type BatchEvent,
  type CacheEvent,
  type EmitEvent,
  type ForaEvent,
  type ImageEvent,
  type RunEndEvent,
  type RunStartEvent,
  SCHEMA_VERSION,
  type StepEvent,
  type StepKind,
} from "../../lib/events/types.ts";

const id = { run_id: "5b0e7a52-3c1e-4c39-9d1f-0d6c1f4f3a10" };

/** Every field of every event kind, optional ones included: the schema must describe exactly these. */
export const EXAMPLES = {
  run_start: {
    event: "run_start",
    ...id,
    time_ms: 0,
    model: { bundle: "bundles/dit-xl-2-256", architecture: "DiT-XL/2" },
    flags: {
      steps: 4,
      cfg_scale: 4,
      seed: 0,
      classes: [207, 88],
      out: "out",
      json: true,
      device: null,
    },
    size: { sampled: { width: 256, height: 256 }, output: { width: 256, height: 256 } },
    plan: {
      steps: 4,
      full: [0, 3],
      kind: ["full", "reuse", "reuse", "full"],
      policy: { name: "static", params: { interval: 3 } },
    },
    schema_version: SCHEMA_VERSION,
  },
  step: {
    event: "step",
    ...id,
    time_ms: 812.5,
    index: 3,
    k: 0,
    timestep: 999,
    kind: "full",
    ms: 810.25,
    indicator: 0.125,
  },
  cache: {
    event: "cache",
    ...id,
    time_ms: 812.75,
    index: 3,
    attn: "MMMM",
    mlp: "MMMM",
  },
  image: {
    event: "image",
    ...id,
    time_ms: 2500,
    path: "out/000000.png",
    seed: 0,
    class: 207,
    class_name: "golden retriever",
    prompt: null,
    index: 0,
    width: 256,
    height: 256,
    sampled_width: 256,
    sampled_height: 256,
  },
  batch: {
    event: "batch",
    ...id,
    time_ms: 2550,
    path: "samples/shard-0/samples-000016-000031.npz",
    first: 16,
    count: 16,
    status: "invalid",
    reason: "samples/shard-0/samples-000016-000031.npz does not match its recorded sha256",
    done: 16,
    total: 48,
  },
  run_end: {
    event: "run_end",
    ...id,
    time_ms: 2600,
    status: "error",
    error: "out/000001.png: could not write PNG image: permission denied (is the folder writable?)",
    totals: {
      full_steps: 2,
      reuse_steps: 2,
      sampling_ms: 1800,
      decode_ms: 400,
      wall_ms: 2600,
      speedup_estimate: 1.7,
    },
  },
} satisfies {
  run_start: Required<RunStartEvent>;
  step: Required<StepEvent>;
  cache: Required<CacheEvent>;
  image: Required<ImageEvent>;
  batch: Required<BatchEvent>;
  run_end: Required<RunEndEvent>;
};

/** FORA's static policy: step k is full when k % interval == 0. */
export function staticPlan(steps: number, interval: number): StepKind[] {
  return Array.from(
    { length: steps },
    (_, k) => (k % interval === 0 ? "full" : "reuse"),
  );
}

/**
 * Emits the events of a run of `steps` steps on a model of `blocks` blocks, as
 * `fora generate` will, through one stamped callback. A fake clock advances 40 ms
 * per full step and 10 ms per reuse step.
 */
export function simulateRun(
  emit: EmitEvent,
  options: {
    steps?: number;
    blocks?: number;
    images?: number;
    status?: "ok" | "interrupted";
  } = {},
): void {
  const { steps = 10, blocks = 4, images = 1, status = "ok" } = options;
  let clock = 0;
  const run = stamper(emit, { runId: "sim", now: () => clock });
  const kind = staticPlan(steps, 3);
  run.emit({
    event: "run_start",
    model: { bundle: "fixtures/dit-tiny", architecture: "DiT-tiny" },
    flags: { steps, policy: "static", interval: 3 },
    plan: {
      steps,
      full: kind.flatMap((c, k) => (c === "full" ? [k] : [])),
      kind,
      policy: { name: "static", params: { interval: 3 } },
    },
    schema_version: SCHEMA_VERSION,
  });
  const times: StepTime[] = [];
  for (let k = 0; k < steps; k++) {
    const ms = kind[k] === "full" ? 40 : 10;
    clock += ms;
    const index = steps - 1 - k;
    run.emit({
      event: "step",
      index,
      k,
      timestep: Math.round((1000 * index) / steps),
      kind: kind[k],
      ms,
    });
    const pattern = (kind[k] === "full" ? "M" : "H").repeat(blocks);
    run.emit({ event: "cache", index, attn: pattern, mlp: pattern });
    times.push({ kind: kind[k], ms });
  }
  for (let i = 0; i < images; i++) {
    clock += 5;
    run.emit({
      event: "image",
      path: `out/${String(i).padStart(6, "0")}.png`,
      seed: i,
      class: 207,
      class_name: "golden retriever",
      prompt: null,
      index: i,
      width: 32,
      height: 32,
      sampled_width: 32,
      sampled_height: 32,
    });
  }
  const sampling = times.reduce((a, t) => a + t.ms, 0);
  run.emit({
    event: "run_end",
    status,
    totals: {
      ...summarizeSteps(times),
      sampling_ms: sampling,
      decode_ms: 5 * images,
      wall_ms: run.elapsedMs(),
    },
  });
}

export function collectRun(
  options?: Parameters<typeof simulateRun>[1],
): ForaEvent[] {
  const events: ForaEvent[] = [];
  simulateRun((e) => events.push(e), options);
  return events;
}
