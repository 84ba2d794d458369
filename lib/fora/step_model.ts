/**
 * The contract the cache drives: a model's step functions for one batch (its conditioning
 * bound). The denoiser (denoiser.ts) calls only this, so any model that provides it (DiT,
 * PixArt) gets FORA caching. Capabilities some models lack are optional sub-objects, which
 * the denoiser checks once, before the run, against what the policy needs.
 */

/** A full step's output and the residuals it emits for the reuse steps of its horizon. */
export interface FullStep {
  out: Float32Array;
  residuals: Float32Array;
}

/**
 * Partial reuse: `reused` flags the blocks a reuse step takes from the cache, a contiguous
 * run at the start or the end of the model. The full step's residuals cover only those
 * blocks; the reuse step computes the others and adds its residual where the reused run starts.
 */
export interface PartialSteps {
  full(x: Float32Array, t: number, reuseTimes: number[], reused: boolean[]): Promise<FullStep>;
  reuse(x: Float32Array, t: number, residual: Float32Array, reused: boolean[]): Promise<Float32Array>;
}

/** The literal path's output: the step's model output and every block's A_k, M_k (and X_k). */
export interface BlocksStep {
  out: Float32Array;
  attn: Float32Array;
  mlp: Float32Array;
  cross?: Float32Array;
}

export interface StepModel {
  readonly depth: number;
  readonly batch: number;
  /** Rows the model computes per step: 2B with guidance, B without. */
  readonly modelBatch: number;
  /** Elements of one block's cached tensor: modelBatch * T * D. */
  readonly featureSize: number;
  /** True when each block also has a cross-attention branch (PixArt): the literal path then caches X_k too. */
  readonly crossAttention?: boolean;
  full(x: Float32Array, t: number, reuseTimes: number[]): Promise<FullStep>;
  /**
   * Reuse step j (0-based) of the cycle the last full step opened, given that step's `residuals`
   * (DiT: R_j is its j-th slice of featureSize values; a single R may be passed alone with j = 0).
   */
  reuse(x: Float32Array, t: number, residuals: Float32Array, j?: number): Promise<Float32Array>;
  /** Partial reuse (absent on models without it, e.g. PixArt). */
  readonly partial?: PartialSteps;
  /** The dynamic policy's indicator tensor for this step's input (block 0's modulated input); absent on models without it. */
  readonly probe?: (x: Float32Array, t: number) => Promise<Float32Array>;
  /** Literal path: blocks flagged in `reuse` take their A_k/M_k (and X_k) from the cache arrays. */
  blocks(
    x: Float32Array,
    t: number,
    reuse: boolean[],
    cachedAttn: Float32Array,
    cachedMlp: Float32Array,
    cachedCross?: Float32Array,
  ): Promise<BlocksStep>;
}
