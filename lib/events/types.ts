/**
 * The events of one `fora generate` or `fora sample` run. They leave the run
 * through one callback (`EmitEvent`), where the NDJSON stream (ndjson.ts) or the
 * terminal progress display (progress.ts) attaches.
 *
 * Every event carries `event` (the tag), `run_id` (the same string for every event
 * of one run) and `time_ms` (milliseconds since the run started). `schema.json` in
 * this folder is the JSON Schema of these types; the two are kept field for field
 * in sync (tests/events/schema_test.ts checks it), and any change to a field bumps
 * SCHEMA_VERSION and the schema's `$id`.
 *
 * Step positions: FORA counts its sampling steps down, `index` = S-1 ... 0 (the
 * timestep index, as in the paper), while `k` = 0 ... S-1 is the position in
 * execution order. Both appear on every step and cache event of the plan.
 */

/** Version of the event format; also the last path part of schema.json's `$id`. */
export const SCHEMA_VERSION = 3;

/** Whether a step runs the whole transformer ("full") or reuses cached block outputs. */
export type StepKind = "full" | "reuse";

/** A step's kind as planned before the run: "decide" is left to a dynamic policy's indicator. */
export type PlannedKind = StepKind | "decide";

/** Any JSON value: the values of `flags` and policy `params`. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Fields every event has. */
interface EventBase {
  run_id: string;
  /** Milliseconds since the run started (monotonic clock, fractional). */
  time_ms: number;
}

export interface RunStartEvent extends EventBase {
  event: "run_start";
  model: {
    /** Path of the model bundle, as given on the command line. */
    bundle: string;
    /** Architecture from the bundle manifest, e.g. "DiT-XL/2". */
    architecture: string;
  };
  /** Every option of the run after defaults were applied, keyed by option name. */
  flags: { [option: string]: JsonValue };
  /**
   * `fora generate`: the pixel size the model samples at, and the size of the images written
   * (they differ where PixArt's resolution binning samples at an aspect-ratio bin).
   */
  size?: { sampled: PixelSize; output: PixelSize };
  plan: {
    /** S, the number of sampling steps. */
    steps: number;
    /** Execution positions k (ascending) of the steps that compute the whole model. */
    full: number[];
    /**
     * Kind of each step in execution order as planned: `kind[k]`, length `steps`. A dynamic
     * policy leaves some steps to "decide"; their step events carry the decision.
     */
    kind: PlannedKind[];
    /** The caching policy that produced the plan, e.g. {name: "static", params: {interval: 3}}. */
    policy: { name: string; params: { [param: string]: JsonValue } };
  };
  schema_version: typeof SCHEMA_VERSION;
}

export interface StepEvent extends EventBase {
  event: "step";
  /** FORA's step index i, counting down from S-1 to 0. */
  index: number;
  /** Position in execution order, 0 ... S-1. */
  k: number;
  /** Time value passed to the model for this step. */
  timestep: number;
  kind: StepKind;
  /** Wall time of the step (model call plus sampler update). */
  ms: number;
  /**
   * Dynamic cache policy only: its indicator (relative L1 change of block 0's modulated
   * input) summed since the last full step, this step's included; below --threshold the
   * step reused.
   */
  indicator?: number;
}

/**
 * Cache use of one step, one character per transformer block in block order:
 * "H" a hit (the block's cached output was reused), "M" a miss (the block was
 * computed and its cache refreshed). `attn[b]` is the attention branch of block b,
 * `mlp[b]` its MLP branch; a 28-block model on a reuse step gives "HHHH...H" (28).
 */
export interface CacheEvent extends EventBase {
  event: "cache";
  /** FORA's step index i of the step this describes. */
  index: number;
  attn: string;
  mlp: string;
}

export interface ImageEvent extends EventBase {
  event: "image";
  /** Path of the PNG written. */
  path: string;
  seed: number;
  /** Class label for class-conditional models; null when unconditional or text-conditioned. */
  class: number | null;
  /** Human name of `class` (e.g. ImageNet's "golden retriever"), null when unknown. */
  class_name: string | null;
  /** Text prompt for text-conditioned models, otherwise null. */
  prompt: string | null;
  /** Sample index within the run, 0-based. */
  index: number;
  /** Size of the image written. */
  width: number;
  height: number;
  /** Size the model sampled at, before resizing to width x height (PixArt's resolution binning). */
  sampled_width: number;
  sampled_height: number;
}

export interface PixelSize {
  width: number;
  height: number;
}

/**
 * One batch of a `fora sample` shard: its .npz file written, or found complete from an
 * earlier run and checked, or found damaged and about to be sampled again.
 */
export interface BatchEvent extends EventBase {
  event: "batch";
  /** Path of the batch's .npz file. */
  path: string;
  /** Index, in the whole run, of the batch's first image. */
  first: number;
  /** Images in the batch. */
  count: number;
  /**
   * "written": sampled and saved by this run; "verified": recorded by an earlier run, its
   * files checked against their sha256s and kept; "invalid": recorded earlier but its files
   * fail that check, so it is sampled again (a "written" event follows).
   */
  status: "written" | "verified" | "invalid";
  /** What failed the check of an "invalid" batch; null otherwise. */
  reason: string | null;
  /** Images of this shard complete so far. */
  done: number;
  /** Images of this shard in all. */
  total: number;
}

export type RunStatus = "ok" | "error" | "interrupted";

export interface RunTotals {
  /** Steps that ran the whole model (counted over the steps actually run). */
  full_steps: number;
  /** Steps that reused cached features. */
  reuse_steps: number;
  /** Milliseconds spent in the sampling loop. */
  sampling_ms: number;
  /** Milliseconds spent decoding latents to images (VAE), 0 for pixel-space models. */
  decode_ms: number;
  /** Milliseconds from run start to run end. */
  wall_ms: number;
  /**
   * Estimated speed-up of the sampling loop over computing every step fully, from the
   * measured mean full and reuse step times: S·mean_full / (full·mean_full + reuse·mean_reuse).
   * Null when no full step was measured. See totals.ts.
   */
  speedup_estimate: number | null;
}

interface RunEndBase extends EventBase {
  event: "run_end";
  totals: RunTotals;
}

/** `error` (the user-facing message) is present exactly when `status` is "error". */
export type RunEndEvent =
  | (RunEndBase & { status: "ok" | "interrupted"; error?: never })
  | (RunEndBase & { status: "error"; error: string });

export type ForaEvent =
  | RunStartEvent
  | StepEvent
  | CacheEvent
  | ImageEvent
  | BatchEvent
  | RunEndEvent;

export type EventName = ForaEvent["event"];

/** The one callback through which a run's events leave it. */
export type EmitEvent = (event: ForaEvent) => void;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K>
  : never;

/** An event without `run_id` and `time_ms`, which `stamper` (stamp.ts) fills in. */
export type EventBody = DistributiveOmit<ForaEvent, "run_id" | "time_ms">;

/** Where a run's events go: `chooseSink` (sink.ts) picks one per run. */
export interface EventSink {
  /** "ndjson": one JSON object per line on stdout; "progress": a display on stderr. */
  readonly kind: "ndjson" | "progress";
  /**
   * Delivers one event. The NDJSON sink throws OutputClosed (output.ts) once its
   * reader has gone away; the run should stop and the CLI exit 0 without a word.
   */
  readonly emit: EmitEvent;
  /** Finishes the output: the progress display ends its line. Safe to call twice. */
  close(): void;
}
