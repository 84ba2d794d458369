/**
 * The planner's side of sampling: wraps a step model into the `Denoiser` a sampler
 * calls, deciding per step (from the cache policy) whether to run the full graph or
 * reuse cached features. Samplers know nothing of caching; the model knows nothing of
 * policies.
 *
 * Two equivalent routes:
 * - residual (fast): a full step also returns R_j for each step of its horizon (the reuse
 *   steps it may serve); a reuse step runs only patch embedding + x_0 + R_j (+ the B
 *   computed blocks for partial reuse) + final layer.
 * - literal (reference): FORA's per-block cache, A_k/M_k kept per block and fed back
 *   through the per-block graph. Used to prove the residual route and for analysis.
 *
 * Dynamic policy: every step first runs the small probe graph (block 0's modulated input);
 * a "decide" step reuses while the indicator accumulated since the last full step stays
 * below the threshold, and otherwise runs in full.
 */
import type { Denoiser } from "../samplers/types.ts";
import type { StepModel } from "../models/dit/step_model.ts";
import { ForaError } from "../errors.ts";
import { type CachePlan, type CachePolicy, decide, planPolicy, relativeL1, reusedBlocks, type StepKind } from "./policy.ts";

export interface StepReport {
  /** Execution position, 0..S-1. */
  k: number;
  /** FORA's step index, S-1-k. */
  index: number;
  modelTime: number;
  kind: StepKind;
  ms: number;
  /** Per block: true where the attention output was reused (a cache hit). */
  attnHits: boolean[];
  /** Per block: true where the MLP output was reused. */
  mlpHits: boolean[];
  /** Dynamic policy: the indicator accumulated since the last full step (this step's included). */
  indicator?: number;
  /** Forecast policy: the residual was extrapolated from the last two full steps. */
  forecast?: boolean;
}

export type StepListener = (r: StepReport) => void;

export function residualDenoiser(model: StepModel, plan: CachePlan | CachePolicy, modelTimes: number[], onStep?: StepListener): Denoiser {
  const policy: CachePolicy = "planned" in plan ? plan : planPolicy(plan);
  const S = policy.planned.length, L = model.depth;
  const dynamic = policy.planned.includes("decide");
  const partial = policy.partial !== null;
  if ((dynamic && !model.probe) || (partial && (!model.partialFull || !model.partialReuse))) {
    throw new ForaError(
      "usage",
      `the ${policy.name} cache policy needs a DiT bundle (this model supports static, schedule and forecast only)`,
    );
  }
  const reused = reusedBlocks(policy, L);
  const size = model.featureSize;
  /**
   * What the last full step (`cur`) and the one before (`prev`) emitted: the positions of
   * their horizons and the model's residuals for them (DiT, PixArt: R_j for the j-th
   * position; PixArt without cached cross-attention: its per-block features, for any j).
   */
  interface Emitted {
    positions: number[];
    residuals: Float32Array;
  }
  const none: Emitted = { positions: [], residuals: new Float32Array(0) };
  let cur = none, prev = none;
  /** R_j of one position, as a slice (models whose residuals are per position: DiT, PixArt with cached cross-attention). */
  const slice = (e: Emitted, k: number): Float32Array | undefined => {
    const j = e.positions.indexOf(k);
    if (j < 0) return undefined;
    if (e.residuals.length !== e.positions.length * size) {
      throw new ForaError(
        "usage",
        `the ${policy.name} cache policy needs one residual per reuse step (with PixArt, keep --cache-cross-attn on)`,
      );
    }
    return e.residuals.subarray(j * size, (j + 1) * size);
  };
  let lastFull = -1, prevFull = -1;
  let probe: Float32Array | undefined, accumulated = 0;
  /** Dynamic: this step's indicator tensor, and its change since the previous step added to the sum. */
  const observe = async (x: Float32Array, t: number) => {
    const p = await model.probe!(x, t);
    if (probe) accumulated += relativeL1(p, probe);
    probe = p;
  };

  const runFull = async (x: Float32Array, k: number, t: number): Promise<Float32Array> => {
    const horizon = policy.horizon(k);
    const times = horizon.map((j) => modelTimes[j]);
    const r = partial ? await model.partialFull!(x, t, times, reused) : await model.full(x, t, times);
    prev = cur;
    cur = { positions: horizon, residuals: r.residuals };
    prevFull = lastFull;
    lastFull = k;
    accumulated = 0;
    return r.out;
  };

  /** R for reuse step k: TaylorSeer's order-1 forecast from the last two full steps (undefined before there are two). */
  const forecastFor = (k: number): Float32Array | undefined => {
    const r0 = slice(prev, k);
    if (!r0) return undefined;
    const r1 = slice(cur, k)!;
    const a = (k - lastFull) / (lastFull - prevFull);
    const r = new Float32Array(size);
    for (let i = 0; i < size; i++) r[i] = (1 + a) * r1[i] - a * r0[i];
    return r;
  };

  return async (x, step) => {
    const k = S - 1 - step.index;
    const t0 = performance.now();
    let forecast = false, indicator: number | undefined;
    if (dynamic) {
      await observe(x, step.modelTime);
      indicator = accumulated;
    }
    const kind = decide(policy, k, lastFull, accumulated);
    let out: Float32Array;
    if (kind === "full") out = await runFull(x, k, step.modelTime);
    else {
      const predicted = policy.forecast ? forecastFor(k) : undefined;
      forecast = predicted !== undefined;
      if (partial) out = await model.partialReuse!(x, step.modelTime, slice(cur, k)!, reused);
      else if (predicted) out = await model.reuse(x, step.modelTime, predicted);
      else out = await model.reuse(x, step.modelTime, cur.residuals, cur.positions.indexOf(k));
    }
    const rep = report(k, step, kind, performance.now() - t0, kind === "reuse" ? reused : reused.map(() => false));
    onStep?.({ ...rep, ...(indicator !== undefined ? { indicator } : {}), ...(forecast ? { forecast } : {}) });
    return out;
  };
}

/**
 * FORA's literal per-block cache. A reuse step takes the blocks flagged in `reused` from
 * the cache (default: all; partial reuse computes the others).
 */
export function literalDenoiser(
  model: StepModel,
  plan: CachePlan,
  onStep?: StepListener,
  reused: boolean[] = Array(model.depth).fill(true),
): Denoiser {
  const S = plan.kinds.length, L = model.depth;
  let attn: Float32Array = new Float32Array(L * model.featureSize);
  let mlp: Float32Array = new Float32Array(L * model.featureSize);
  let cross: Float32Array | undefined = model.crossAttention ? new Float32Array(L * model.featureSize) : undefined;
  return async (x, step) => {
    const k = S - 1 - step.index;
    const kind = plan.kinds[k];
    const t0 = performance.now();
    const flags = reused.map((r) => r && kind === "reuse");
    const r = await model.blocks(x, step.modelTime, flags, attn, mlp, cross);
    attn = r.attn;
    mlp = r.mlp;
    cross = r.cross ?? cross;
    onStep?.(report(k, step, kind, performance.now() - t0, flags));
    return r.out;
  };
}

/** `hits`: per block, whether this step took it from the cache. */
function report(k: number, step: { index: number; modelTime: number }, kind: StepKind, ms: number, hits: boolean[]): StepReport {
  return { k, index: step.index, modelTime: step.modelTime, kind, ms, attnHits: hits, mlpHits: [...hits] };
}
