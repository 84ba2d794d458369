/**
 * Cache policies: which steps run the model in full and which reuse (or forecast) the
 * features of the last full step. Positions k = 0..S-1 count steps in execution order
 * (the sampler's k); FORA's own step index i counts down: i = S-1-k.
 *
 * A `CachePolicy` is plain data, one variant per policy; the pure functions below answer
 * what a run needs of it: the kind of every step known in advance (`plannedKinds`, where
 * "decide" is left to the dynamic indicator), the reuse steps a full step must emit
 * residuals for (`horizon`), the decision of a step (`decide`) and what run_start reports
 * (`describePolicy`). Every policy composes with the same guards: a warm-up (first W steps
 * full), a cool-down (last C steps full) and a cap on consecutive reuse steps.
 */
import { ForaError } from "../errors.ts";

export type StepKind = "full" | "reuse";
/** A step's kind as known before the run: "decide" is left to the dynamic indicator. */
export type PlannedKind = StepKind | "decide";

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

interface PolicyBase {
  readonly steps: number;
  readonly guards: Readonly<Guards>;
}

/** FORA itself: full when i == S-1 || i % N == 0 (docs/design.md §1). */
export interface StaticPolicy extends PolicyBase {
  readonly kind: "static";
  readonly interval: number;
}

/** A plan decided before the run (a schedule file); `params` are the file's, reported as they are. */
export interface SchedulePolicy extends PolicyBase {
  readonly kind: "schedule";
  readonly kinds: readonly StepKind[];
  readonly params: Readonly<Record<string, number>>;
}

/**
 * TeaCache-like: a "decide" step reuses while the indicator accumulated since the last
 * full step stays below `threshold`; a full step serves at most `lookahead` steps.
 */
export interface DynamicPolicy extends PolicyBase {
  readonly kind: "dynamic";
  readonly threshold: number;
  readonly lookahead: number;
}

/** Static FORA where `partial.blocks` blocks at one end run on every step. */
export interface PartialPolicy extends PolicyBase {
  readonly kind: "partial";
  readonly interval: number;
  readonly partial: PartialReuse;
}

/** Static FORA whose reuse steps extrapolate (TaylorSeer order 1) from the last two full steps. */
export interface ForecastPolicy extends PolicyBase {
  readonly kind: "forecast";
  readonly interval: number;
}

export type CachePolicy = StaticPolicy | SchedulePolicy | DynamicPolicy | PartialPolicy | ForecastPolicy;

/** Defaults: FORA's interval (the paper's trade-off), dynamic threshold and lookahead, partial's B. */
export const POLICY_DEFAULTS = { interval: 3, threshold: 0.1, lookahead: 4, computeLast: 1 } as const;

// ---- constructors: each checks its parameters once; errors name the flag ----------

export function staticPolicy(steps: number, interval: number, guards: Guards = {}): StaticPolicy {
  return { kind: "static", steps: checkSteps(steps), interval: checkInterval(interval, steps), guards: checkGuards(guards) };
}

export function schedulePolicy(kinds: readonly StepKind[], params: Record<string, number> = {}, guards: Guards = {}): SchedulePolicy {
  return { kind: "schedule", steps: checkSteps(kinds.length), kinds: [...kinds], params: { ...params }, guards: checkGuards(guards) };
}

/**
 * Dynamic (TeaCache-like): outside the warm-up and cool-down every step is decided at run
 * time. The indicator is the relative L1 change of block 0's modulated input between
 * consecutive steps, accumulated since the last full step: below `threshold` the step
 * reuses, otherwise it runs in full (and the sum restarts). A full step emits residuals
 * for the next `lookahead` steps (capped by max-reuse and the cool-down); a step beyond
 * them runs in full. Threshold 0 never reuses.
 */
export function dynamicPolicy(steps: number, threshold: number, lookahead: number, guards: Guards = {}): DynamicPolicy {
  checkSteps(steps);
  if (!Number.isFinite(threshold) || threshold < 0) throw new ForaError("usage", `--threshold must be a number >= 0, got ${threshold}`);
  if (!Number.isInteger(lookahead) || lookahead < 1) {
    throw new ForaError("usage", `--lookahead must be a whole number >= 1, got ${lookahead}`);
  }
  return { kind: "dynamic", steps, threshold, lookahead, guards: checkGuards(guards) };
}

/** Static FORA where B blocks at one end (`partial.end`) run on every step; reuse steps reuse the others. */
export function partialPolicy(steps: number, interval: number, partial: PartialReuse, depth: number, guards: Guards = {}): PartialPolicy {
  const flag = partial.end === "first" ? "--compute-first" : "--compute-last";
  if (!Number.isInteger(partial.blocks) || partial.blocks < 1 || partial.blocks >= depth) {
    throw new ForaError(
      "usage",
      `${flag} must be a whole number from 1 to ${depth - 1} (the model has ${depth} blocks), got ${partial.blocks}`,
    );
  }
  const base = staticPolicy(steps, interval, guards);
  return { ...base, kind: "partial", partial: { ...partial } };
}

/**
 * TaylorSeer order 1 over static FORA: a reuse step m after full steps p0 < p1 takes
 * (1+a) R_m(F1) - a R_m(F0), a = (m - p1)/(p1 - p0). R is linear in the cached features,
 * so this is the residual of the extrapolated features. Each full step therefore emits
 * residuals for its own reuse run and for the run after the next full step.
 */
export function forecastPolicy(steps: number, interval: number, guards: Guards = {}): ForecastPolicy {
  return { ...staticPolicy(steps, interval, guards), kind: "forecast" };
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
  schedule?: { kinds: readonly StepKind[]; params: Record<string, number> };
}

/** The policy the settings describe (validated; errors name the flag). */
export function makePolicy(s: PolicySettings): CachePolicy {
  const guards: Guards = { warmup: s.warmup, cooldown: s.cooldown, maxReuse: s.maxReuse };
  switch (s.policy) {
    case "static":
      return staticPolicy(s.steps, s.interval, guards);
    case "schedule":
      if (!s.schedule) throw new ForaError("usage", "--policy schedule needs --schedule FILE.json");
      return schedulePolicy(s.schedule.kinds, s.schedule.params, guards);
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

// ---- what a run asks of a policy ----------------------------------------------------

const plannedMemo = new WeakMap<CachePolicy, readonly PlannedKind[]>();

/** Per step (position k): the kind decided in advance, or "decide" (dynamic), guards applied. */
export function plannedKinds(p: CachePolicy): readonly PlannedKind[] {
  let kinds = plannedMemo.get(p);
  if (!kinds) {
    kinds = planKinds(p);
    plannedMemo.set(p, kinds);
  }
  return kinds;
}

function planKinds(p: CachePolicy): PlannedKind[] {
  switch (p.kind) {
    case "static":
    case "partial":
    case "forecast":
      return guardKinds(staticKinds(p.steps, p.interval), p.guards);
    case "schedule":
      return guardKinds(p.kinds, p.guards);
    case "dynamic":
      // The cap on reuse runs is the lookahead's to enforce (a step beyond it runs in full).
      return guardKinds(Array<PlannedKind>(p.steps).fill(p.threshold > 0 ? "decide" : "full"), { ...p.guards, maxReuse: undefined });
  }
}

/**
 * The kinds for consumers that need one per step in advance (profile, eval): a dynamic
 * policy's undecided steps count as full there, the most they can cost.
 */
export function worstCaseKinds(p: CachePolicy): StepKind[] {
  return plannedKinds(p).map((k) => (k === "decide" ? "full" : k));
}

/** Whether some steps are decided while the run goes (the dynamic indicator must be observed). */
export function decidesAtRunTime(p: CachePolicy): boolean {
  return plannedKinds(p).includes("decide");
}

/**
 * Positions (ascending) that the full step at k must emit residuals for: the reuse steps
 * it may serve (and, when forecasting, those of the next cycle too).
 */
export function horizon(p: CachePolicy, k: number): number[] {
  const planned = plannedKinds(p);
  switch (p.kind) {
    case "static":
    case "schedule":
    case "partial":
      return reuseRunAfter(planned, k);
    case "forecast": {
      const own = reuseRunAfter(planned, k);
      const next = k + own.length + 1;
      return next < planned.length ? [...own, ...reuseRunAfter(planned, next)] : own;
    }
    case "dynamic": {
      const reach = dynamicReach(p), out: number[] = [];
      for (let j = k + 1; j < planned.length && j <= k + reach && planned[j] === "decide"; j++) out.push(j);
      return out;
    }
  }
}

/**
 * The decision for step k, given the last full step's position and (for "decide" steps)
 * the indicator accumulated since it, this step's included. A step outside the last
 * full step's horizon has no residual to reuse and runs in full.
 */
export function decide(p: CachePolicy, k: number, lastFull: number, accumulated = 0): StepKind {
  const planned = plannedKinds(p)[k];
  if (planned === "full" || lastFull < 0) return "full";
  if (!horizon(p, lastFull).includes(k)) return "full";
  if (planned === "reuse") return "reuse";
  return p.kind === "dynamic" && accumulated < p.threshold ? "reuse" : "full";
}

/** Per block, whether a reuse step of this policy takes it from the cache (all of them but partial reuse's computed end). */
export function reusedBlocks(p: CachePolicy, depth: number): boolean[] {
  const part = p.kind === "partial" ? p.partial : null;
  return Array.from({ length: depth }, (_, k) => !part || (part.end === "last" ? k < depth - part.blocks : k >= part.blocks));
}

/** The policy as run_start, sample records and eval report it: its name and parameters (guards only where given). */
export function describePolicy(p: CachePolicy): { name: PolicyName; params: Record<string, number> } {
  return { name: p.kind, params: { ...ownParams(p), ...guardParams(p.guards) } };
}

function ownParams(p: CachePolicy): Record<string, number> {
  switch (p.kind) {
    case "static":
      return { interval: p.interval };
    case "schedule":
      return { ...p.params };
    case "dynamic":
      return { threshold: p.threshold, lookahead: dynamicReach(p) };
    case "partial":
      return { interval: p.interval, [p.partial.end === "first" ? "compute_first" : "compute_last"]: p.partial.blocks };
    case "forecast":
      return { interval: p.interval, order: 1 };
  }
}

/** FORA's interval N of the policies built on static FORA; null for a schedule or the dynamic policy. */
export function intervalOf(p: CachePolicy): number | null {
  return p.kind === "schedule" || p.kind === "dynamic" ? null : p.interval;
}

// ---- pieces -------------------------------------------------------------------------

/** Full when i == S-1 || i % N == 0 (docs/design.md §1); N = 1 computes every step. */
export function staticKinds(steps: number, interval: number): StepKind[] {
  checkInterval(interval, checkSteps(steps));
  return Array.from({ length: steps }, (_, k): StepKind => {
    const i = steps - 1 - k;
    return i === steps - 1 || i % interval === 0 ? "full" : "reuse";
  });
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

/** Relative L1 change |a - b|_1 / |b|_1 (TeaCache's indicator); 0 when b is all zeros and a equals it. */
export function relativeL1(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += Math.abs(a[i] - b[i]);
    den += Math.abs(b[i]);
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
}

/** How many steps a dynamic full step serves: the lookahead, capped by max-reuse. */
function dynamicReach(p: DynamicPolicy): number {
  return Math.min(p.lookahead, p.guards.maxReuse ?? p.lookahead);
}

/** The guards as run_start params (only those given). */
function guardParams(g: Guards): Record<string, number> {
  return {
    ...(g.warmup ? { warmup: g.warmup } : {}),
    ...(g.cooldown ? { cooldown: g.cooldown } : {}),
    ...(g.maxReuse !== undefined ? { max_reuse: g.maxReuse } : {}),
  };
}

function checkSteps(steps: number): number {
  if (!Number.isInteger(steps) || steps < 1) throw new ForaError("usage", `steps must be a whole number >= 1, got ${steps}`);
  return steps;
}

/** The one check of FORA's interval N against the run's step count. */
function checkInterval(interval: number, steps: number): number {
  if (!Number.isInteger(interval) || interval < 1) {
    throw new ForaError("usage", `--cache-interval must be a whole number >= 1, got ${interval}`);
  }
  if (interval > steps) throw new ForaError("usage", `--cache-interval ${interval} is larger than --steps ${steps}; use 1..${steps}`);
  return interval;
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
