/**
 * The planner's side of sampling: wraps a step model into the `Denoiser` a sampler
 * calls, deciding per step (from the cache policy) whether to run the full graph or
 * reuse cached features. Samplers know nothing of caching; the model knows nothing of
 * policies. The sampler hands over the step as it counts it (position k and index i).
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
import type { Denoiser, SamplerStep } from "../samplers/types.ts";
import { ForaError } from "../errors.ts";
import { type CachePolicy, decide, decidesAtRunTime, horizon, relativeL1, reusedBlocks, type StepKind } from "./policy.ts";
import type { FullStep, StepModel } from "./step_model.ts";

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

/** One step as the policy's route runs it: its output, and what the report adds. */
interface Ran {
  kind: StepKind;
  out: Float32Array;
  indicator?: number;
  forecast?: boolean;
}

export function residualDenoiser(model: StepModel, policy: CachePolicy, modelTimes: number[], onStep?: StepListener): Denoiser {
  const reused = reusedBlocks(policy, model.depth);
  const size = model.featureSize;
  const unsupported = () =>
    new ForaError("usage", `the ${policy.kind} cache policy needs a DiT bundle (this model supports static, schedule and forecast only)`);
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
  let cur = none, prev = none, lastFull = -1, prevFull = -1;
  /** R_j of one position, as a slice (models whose residuals are per position: DiT, PixArt with cached cross-attention). */
  const slice = (e: Emitted, k: number): Float32Array | undefined => {
    const j = e.positions.indexOf(k);
    if (j < 0) return undefined;
    if (e.residuals.length !== e.positions.length * size) {
      throw new ForaError(
        "usage",
        `the ${policy.kind} cache policy needs one residual per reuse step (with PixArt, keep --cache-cross-attn on)`,
      );
    }
    return e.residuals.subarray(j * size, (j + 1) * size);
  };
  /** A full step at k through `run`, its residuals kept for the steps of its horizon. */
  const full = async (k: number, run: (times: number[]) => Promise<FullStep>): Promise<Ran> => {
    const positions = horizon(policy, k);
    const r = await run(positions.map((j) => modelTimes[j]));
    prev = cur;
    cur = { positions, residuals: r.residuals };
    prevFull = lastFull;
    lastFull = k;
    return { kind: "full", out: r.out };
  };
  /** FORA's reuse step: the last full step's R_k. */
  const reuse = async (x: Float32Array, step: SamplerStep): Promise<Ran> => ({
    kind: "reuse",
    out: await model.reuse(x, step.modelTime, cur.residuals, cur.positions.indexOf(step.k)),
  });
  const plainStep = (x: Float32Array, step: SamplerStep): Promise<Ran> =>
    decide(policy, step.k, lastFull) === "full" ? full(step.k, (times) => model.full(x, step.modelTime, times)) : reuse(x, step);

  const run = ((): (x: Float32Array, step: SamplerStep) => Promise<Ran> => {
    switch (policy.kind) {
      case "static":
      case "schedule":
        return plainStep;
      case "forecast":
        /** R for reuse step k: TaylorSeer's order-1 forecast from the last two full steps (none before there are two). */
        return async (x, step) => {
          if (decide(policy, step.k, lastFull) === "full") return await plainStep(x, step);
          const r0 = slice(prev, step.k), r1 = slice(cur, step.k);
          if (!r0 || !r1) return await reuse(x, step);
          const a = (step.k - lastFull) / (lastFull - prevFull);
          const r = new Float32Array(size);
          for (let i = 0; i < size; i++) r[i] = (1 + a) * r1[i] - a * r0[i];
          return { kind: "reuse", out: await model.reuse(x, step.modelTime, r), forecast: true };
        };
      case "partial": {
        const partial = model.partial;
        if (!partial) throw unsupported();
        return async (x, step) => {
          if (decide(policy, step.k, lastFull) === "full") {
            return await full(step.k, (times) => partial.full(x, step.modelTime, times, reused));
          }
          const residual = slice(cur, step.k);
          if (!residual) throw new Error(`step ${step.k} is not in the horizon of the full step at ${lastFull}`);
          return { kind: "reuse", out: await partial.reuse(x, step.modelTime, residual, reused) };
        };
      }
      case "dynamic": {
        if (!decidesAtRunTime(policy)) return plainStep;
        const probe = model.probe;
        if (!probe) throw unsupported();
        let last: Float32Array | undefined, accumulated = 0;
        return async (x, step) => {
          // This step's indicator tensor, and its change since the previous step added to the sum.
          const p = await probe(x, step.modelTime);
          if (last) accumulated += relativeL1(p, last);
          last = p;
          const indicator = accumulated;
          if (decide(policy, step.k, lastFull, accumulated) === "reuse") return { ...(await reuse(x, step)), indicator };
          accumulated = 0;
          return { ...(await full(step.k, (times) => model.full(x, step.modelTime, times))), indicator };
        };
      }
    }
  })();

  return async (x, step) => {
    const t0 = performance.now();
    const r = await run(x, step);
    const rep = report(step, r.kind, performance.now() - t0, r.kind === "reuse" ? reused : reused.map(() => false));
    onStep?.({ ...rep, ...(r.indicator !== undefined ? { indicator: r.indicator } : {}), ...(r.forecast ? { forecast: true } : {}) });
    return r.out;
  };
}

/**
 * FORA's literal per-block cache over a plan of step kinds (position k). A reuse step takes
 * the blocks flagged in `reused` from the cache (default: all; partial reuse computes the others).
 */
export function literalDenoiser(
  model: StepModel,
  kinds: readonly StepKind[],
  onStep?: StepListener,
  reused: boolean[] = Array(model.depth).fill(true),
): Denoiser {
  const L = model.depth;
  let attn: Float32Array = new Float32Array(L * model.featureSize);
  let mlp: Float32Array = new Float32Array(L * model.featureSize);
  let cross: Float32Array | undefined = model.crossAttention ? new Float32Array(L * model.featureSize) : undefined;
  return async (x, step) => {
    const kind = kinds[step.k];
    const t0 = performance.now();
    const flags = reused.map((r) => r && kind === "reuse");
    const r = await model.blocks(x, step.modelTime, flags, attn, mlp, cross);
    attn = r.attn;
    mlp = r.mlp;
    cross = r.cross ?? cross;
    onStep?.(report(step, kind, performance.now() - t0, flags));
    return r.out;
  };
}

/** `hits`: per block, whether this step took it from the cache. */
function report(step: SamplerStep, kind: StepKind, ms: number, hits: boolean[]): StepReport {
  return { k: step.k, index: step.index, modelTime: step.modelTime, kind, ms, attnHits: hits, mlpHits: [...hits] };
}
