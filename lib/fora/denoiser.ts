/**
 * The planner's side of sampling: wraps a DiT step model into the `Denoiser` a sampler
 * calls, deciding per step (from the plan made in advance) whether to run the full
 * graph or reuse cached features. Samplers know nothing of caching; the model knows
 * nothing of policies.
 *
 * Two equivalent routes:
 * - residual (fast): a full step also returns R_j for each reuse step up to the next
 *   full step; a reuse step runs only patch embedding + x_0 + R_j + final layer.
 * - literal (reference): FORA's per-block cache, A_k/M_k kept per block and fed back
 *   through the per-block graph. Used to prove the residual route and for analysis.
 */
import type { Denoiser } from "../samplers/types.ts";
import type { StepModel } from "../models/dit/step_model.ts";
import { type CachePlan, reuseRunAfter, type StepKind } from "./policy.ts";

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
}

export type StepListener = (r: StepReport) => void;

export function residualDenoiser(model: StepModel, plan: CachePlan, modelTimes: number[], onStep?: StepListener): Denoiser {
  const S = plan.kinds.length;
  let residuals: Float32Array = new Float32Array(0);
  let lastFull = -1;
  return async (x, step) => {
    const k = S - 1 - step.index;
    const kind = plan.kinds[k];
    const t0 = performance.now();
    let out: Float32Array;
    if (kind === "full") {
      const run = reuseRunAfter(plan.kinds, k);
      const r = await model.full(x, step.modelTime, run.map((j) => modelTimes[j]));
      residuals = r.residuals;
      lastFull = k;
      out = r.out;
    } else {
      const j = k - lastFull - 1;
      out = await model.reuse(x, step.modelTime, residuals, j);
    }
    onStep?.(report(k, step, kind, performance.now() - t0, model.depth));
    return out;
  };
}

export function literalDenoiser(model: StepModel, plan: CachePlan, onStep?: StepListener): Denoiser {
  const S = plan.kinds.length, L = model.depth;
  let attn: Float32Array = new Float32Array(L * model.featureSize);
  let mlp: Float32Array = new Float32Array(L * model.featureSize);
  let cross: Float32Array | undefined = model.crossAttention ? new Float32Array(L * model.featureSize) : undefined;
  return async (x, step) => {
    const k = S - 1 - step.index;
    const kind = plan.kinds[k];
    const t0 = performance.now();
    const r = await model.blocks(x, step.modelTime, Array(L).fill(kind === "reuse"), attn, mlp, cross);
    attn = r.attn;
    mlp = r.mlp;
    cross = r.cross ?? cross;
    onStep?.(report(k, step, kind, performance.now() - t0, L));
    return r.out;
  };
}

function report(k: number, step: { index: number; modelTime: number }, kind: StepKind, ms: number, depth: number): StepReport {
  const hits = Array<boolean>(depth).fill(kind === "reuse");
  return { k, index: step.index, modelTime: step.modelTime, kind, ms, attnHits: hits, mlpHits: [...hits] };
}
