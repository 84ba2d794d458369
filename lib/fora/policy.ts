/**
 * Cache policies: which steps run the model in full and which reuse (or forecast) the
 * features of the last full step. Positions k = 0..S-1 count steps in execution order;
 * FORA's own step index i counts down: i = S-1-k.
 *
 * - A `CachePlan` is a decision for every step made before the run (static FORA, a
 *   schedule file). Its consumers (eval, profile, sample records) read `kinds`.
 * - A `CachePolicy` is what the denoiser drives: a plan in which some steps may be left
 *   to `"decide"` at run time (the dynamic policy), plus how far ahead a full step must
 *   emit residuals (`horizon`), and the reuse variant (plain, forecast, partial).
 *
 * Every policy composes with the same guards: a warm-up (first W steps full), a
 * cool-down (last C steps full) and a cap on consecutive reuse steps.
 */
import { ForaError } from "../errors.ts";

export type StepKind = "full" | "reuse";
/** A step's kind as known before the run: "decide" is left to the dynamic indicator. */
export type PlannedKind = StepKind | "decide";

export interface CachePlan {
  policy: { name: string; params: Record<string, number> };
  kinds: StepKind[];
}

export const POLICY_NAMES = ["static", "schedule", "dynamic", "partial", "forecast"] as const;
export type PolicyName = typeof POLICY_NAMES[number];

export interface Guards {
  /** The first W steps run in full. */
  warmup?: number;
  /** The last C steps run in full. */
  cooldown?: number;
  /** At most this many reuse steps in a row (then a full step); absent: no cap. */
  maxReuse?: number;
}

export interface PartialReuse {
  /** Which end of the model runs on every step. */
  end: "first" | "last";
  blocks: number;
}

export interface CachePolicy {
  name: string;
  /** Reported in run_start's plan.policy.params. */
  params: Record<string, number>;
  /** Per step: decided in advance, or "decide" (dynamic). */
  planned: PlannedKind[];
  /** Reuse steps forecast (TaylorSeer order 1) from the last two full steps instead of reusing the last. */
  forecast: boolean;
  /** Partial reuse: B blocks at one end of the model are computed on every step; the residual covers the others. */
  partial: PartialReuse | null;
  /** Dynamic: a "decide" step reuses while the indicator accumulated since the last full step stays below this. */
  threshold: number;
  /**
   * Positions (ascending) that the full step at k must emit residuals for: the reuse
   * steps it may serve (and, when forecasting, those of the next cycle too).
   */
  horizon(k: number): number[];
}

/** Full when i == S-1 || i % N == 0 (DESIGN §1); N = 1 computes every step. */
export function staticIntervalPlan(steps: number, interval: number): CachePlan {
  checkSteps(steps);
  if (!Number.isInteger(interval) || interval < 1 || interval > steps) {
    throw new ForaError("usage", `--cache-interval must be a whole number from 1 to the step count (${steps}), got ${interval}`);
  }
  const kinds = Array.from({ length: steps }, (_, k): StepKind => {
    const i = steps - 1 - k;
    return i === steps - 1 || i % interval === 0 ? "full" : "reuse";
  });
  return { policy: { name: "static", params: { interval } }, kinds };
}

/** For the full step at position k: the positions of the reuse steps that follow it. */
export function reuseRunAfter(kinds: readonly PlannedKind[], k: number): number[] {
  const run: number[] = [];
  for (let j = k + 1; j < kinds.length && kinds[j] === "reuse"; j++) run.push(j);
  return run;
}

export function countFull(kinds: readonly PlannedKind[]): number {
  return kinds.filter((k) => k === "full").length;
}

/**
 * Applies the guards to a plan made in advance: warm-up and cool-down steps become full,
 * and a run of reuse steps longer than the cap is broken by full steps. The first step is
 * always full (nothing is cached before it).
 */
export function guardKinds<K extends PlannedKind>(kinds: readonly K[], guards: Guards): (K | "full")[] {
  const S = kinds.length;
  const { warmup = 0, cooldown = 0, maxReuse } = checkGuards(guards);
  let run = 0;
  return kinds.map((kind, k) => {
    const forced = k === 0 || k < warmup || k >= S - cooldown;
    if (forced || (kind !== "full" && maxReuse !== undefined && run >= maxReuse)) {
      run = 0;
      return "full";
    }
    run = kind === "full" ? 0 : run + 1;
    return kind;
  });
}

/** The guards as run_start params (only those given). */
function guardParams(g: Guards): Record<string, number> {
  return {
    ...(g.warmup ? { warmup: g.warmup } : {}),
    ...(g.cooldown ? { cooldown: g.cooldown } : {}),
    ...(g.maxReuse !== undefined ? { max_reuse: g.maxReuse } : {}),
  };
}

/** A plan made in advance (static interval or schedule file) as a policy, with the guards applied. */
export function planPolicy(plan: CachePlan, guards: Guards = {}): CachePolicy {
  checkSteps(plan.kinds.length);
  const planned = guardKinds(plan.kinds, guards);
  return {
    name: plan.policy.name,
    params: { ...plan.policy.params, ...guardParams(guards) },
    planned,
    forecast: false,
    partial: null,
    threshold: 0,
    horizon: (k) => reuseRunAfter(planned, k),
  };
}

/**
 * TaylorSeer order 1 over static FORA: a reuse step m after full steps p0 < p1 takes
 * (1+a) R_m(F1) - a R_m(F0), a = (m - p1)/(p1 - p0). R is linear in the cached features,
 * so this is the residual of the extrapolated features. Each full step therefore emits
 * residuals for its own reuse run and for the run after the next full step.
 */
export function forecastPolicy(steps: number, interval: number, guards: Guards = {}): CachePolicy {
  const planned = guardKinds(staticIntervalPlan(steps, interval).kinds, guards);
  return {
    name: "forecast",
    params: { interval, order: 1, ...guardParams(guards) },
    planned,
    forecast: true,
    partial: null,
    threshold: 0,
    horizon(k) {
      const own = reuseRunAfter(planned, k);
      const next = k + own.length + 1;
      return next < planned.length ? [...own, ...reuseRunAfter(planned, next)] : own;
    },
  };
}

/** Static FORA where B blocks at one end (`partial.end`) run on every step; reuse steps reuse the others. */
export function partialPolicy(steps: number, interval: number, partial: PartialReuse, depth: number, guards: Guards = {}): CachePolicy {
  const flag = partial.end === "first" ? "--compute-first" : "--compute-last";
  if (!Number.isInteger(partial.blocks) || partial.blocks < 1 || partial.blocks >= depth) {
    throw new ForaError(
      "usage",
      `${flag} must be a whole number from 1 to ${depth - 1} (the model has ${depth} blocks), got ${partial.blocks}`,
    );
  }
  const base = planPolicy(staticIntervalPlan(steps, interval), guards);
  const param = partial.end === "first" ? "compute_first" : "compute_last";
  return { ...base, name: "partial", params: { interval, [param]: partial.blocks, ...guardParams(guards) }, partial };
}

/** Per block, whether a reuse step of this policy takes it from the cache (all of them but partial reuse's computed end). */
export function reusedBlocks(policy: Pick<CachePolicy, "partial">, depth: number): boolean[] {
  const p = policy.partial;
  return Array.from({ length: depth }, (_, k) => !p || (p.end === "last" ? k < depth - p.blocks : k >= p.blocks));
}

/**
 * Dynamic (TeaCache-like): outside the warm-up and cool-down every step is decided at run
 * time. The indicator is the relative L1 change of block 0's modulated input between
 * consecutive steps, accumulated since the last full step: below `threshold` the step
 * reuses, otherwise it runs in full (and the sum restarts). A full step emits residuals
 * for the next `lookahead` steps (capped by max-reuse and the cool-down); a step beyond
 * them runs in full. Threshold 0 never reuses.
 */
export function dynamicPolicy(steps: number, threshold: number, lookahead: number, guards: Guards = {}): CachePolicy {
  checkSteps(steps);
  if (!Number.isFinite(threshold) || threshold < 0) throw new ForaError("usage", `--threshold must be a number >= 0, got ${threshold}`);
  if (!Number.isInteger(lookahead) || lookahead < 1) {
    throw new ForaError("usage", `--lookahead must be a whole number >= 1, got ${lookahead}`);
  }
  const reach = Math.min(lookahead, guards.maxReuse ?? lookahead);
  const planned = guardKinds(Array<PlannedKind>(steps).fill(threshold > 0 ? "decide" : "full"), { ...guards, maxReuse: undefined });
  return {
    name: "dynamic",
    params: { threshold, lookahead: reach, ...guardParams(guards) },
    planned,
    forecast: false,
    partial: null,
    threshold,
    horizon(k) {
      const out: number[] = [];
      for (let j = k + 1; j < planned.length && j <= k + reach && planned[j] === "decide"; j++) out.push(j);
      return out;
    },
  };
}

/**
 * The decision for step k, given the last full step's position and (for "decide" steps)
 * the indicator accumulated since it, this step's included. A step outside the last
 * full step's horizon has no residual to reuse and runs in full.
 */
export function decide(policy: CachePolicy, k: number, lastFull: number, accumulated = 0): StepKind {
  const planned = policy.planned[k];
  if (planned === "full" || lastFull < 0) return "full";
  if (!policy.horizon(lastFull).includes(k)) return "full";
  if (planned === "reuse") return "reuse";
  return accumulated < policy.threshold ? "reuse" : "full";
}

/** Relative L1 change |a - b|_1 / |b|_1 (TeaCache's indicator); 0 when b is all zeros and a equals it. */
export function relativeL1(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += Math.abs(a[i] - b[i]);
    den += Math.abs(b[i]);
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
}

function checkSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) throw new ForaError("usage", `steps must be a whole number >= 1, got ${steps}`);
}

function checkGuards(g: Guards): Guards {
  for (const [flag, v] of [["--warmup", g.warmup], ["--cooldown", g.cooldown]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new ForaError("usage", `${flag} must be a whole number >= 0, got ${v}`);
  }
  if (g.maxReuse !== undefined && (!Number.isInteger(g.maxReuse) || g.maxReuse < 1)) {
    throw new ForaError("usage", `--max-reuse must be a whole number >= 1, got ${g.maxReuse}`);
  }
  return g;
}

/**
 * A policy as a plan for consumers that need one kind per step in advance (sample
 * records, profile, eval): a dynamic policy's undecided steps count as full there, the
 * most they can cost. Events report `planned` itself, "decide" included.
 */
export function planOfPolicy(policy: CachePolicy): CachePlan {
  return { policy: { name: policy.name, params: { ...policy.params } }, kinds: policy.planned.map((k) => (k === "decide" ? "full" : k)) };
}

export interface PolicySettings extends Guards {
  policy: PolicyName;
  steps: number;
  /** static, partial, forecast: FORA's interval N. */
  interval: number;
  /** dynamic */
  threshold?: number;
  lookahead?: number;
  /** partial: B blocks computed every step, at the end or the start of the model (one of the two). */
  computeLast?: number;
  computeFirst?: number;
  /** The model's block count (partial). */
  depth?: number;
  /** schedule: the plan read from the file. */
  schedule?: CachePlan;
}

/** Defaults: dynamic threshold and lookahead, partial's B. */
export const POLICY_DEFAULTS = { threshold: 0.1, lookahead: 4, computeLast: 1 } as const;

/** The policy the flags describe (validated; errors name the flag). */
export function makePolicy(s: PolicySettings): CachePolicy {
  const guards: Guards = { warmup: s.warmup, cooldown: s.cooldown, maxReuse: s.maxReuse };
  switch (s.policy) {
    case "static":
      return planPolicy(staticIntervalPlan(s.steps, s.interval), guards);
    case "schedule":
      if (!s.schedule) throw new ForaError("usage", "--policy schedule needs --schedule FILE.json");
      return planPolicy(s.schedule, guards);
    case "dynamic":
      return dynamicPolicy(
        s.steps,
        s.threshold ?? POLICY_DEFAULTS.threshold,
        s.lookahead ?? s.maxReuse ?? POLICY_DEFAULTS.lookahead,
        guards,
      );
    case "partial":
      if (s.depth === undefined) throw new ForaError("usage", "--policy partial needs a DiT bundle");
      if (s.computeFirst !== undefined && s.computeLast !== undefined) {
        throw new ForaError("usage", "give --compute-first or --compute-last, not both");
      }
      return partialPolicy(
        s.steps,
        s.interval,
        s.computeFirst !== undefined
          ? { end: "first", blocks: s.computeFirst }
          : { end: "last", blocks: s.computeLast ?? POLICY_DEFAULTS.computeLast },
        s.depth,
        guards,
      );
    case "forecast":
      return forecastPolicy(s.steps, s.interval, guards);
  }
}
