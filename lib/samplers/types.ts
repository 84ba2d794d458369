/**
 * The contract every sampler shares (k-diffusion style): a sampler is a plain async function over
 * a model callable and a plan computed in advance; progress leaves through one callback. The
 * sampler never sees the model's internals or the caching policy: a planner elsewhere reads
 * `plan.modelTimes` to decide which steps are full and which reuse cached features, and the
 * Denoiser it builds does the rest.
 */
import type { Rng } from "../random/pcg32.ts";

/** Latent batch shape; latents are float32 [batch, channels, height, width]. */
export interface LatentShape {
  batch: number;
  channels: number;
  height: number;
  width: number;
}

/**
 * A step as the sampler counts it: position k (0-based, in execution order), FORA's step
 * index i = S-1-k, and the model time the model is called with. The denoiser and the step
 * callback both receive it whole, so neither converts between k and i.
 */
export interface SamplerStep {
  k: number;
  index: number;
  modelTime: number;
}

/**
 * Model output for the whole batch, layout [B, outC, H, W] float32; outC = C (eps only) or 2C
 * (eps, then variance interpolation values in [-1,1]).
 */
export type Denoiser = (x: Float32Array, step: SamplerStep) => Promise<Float32Array>;

export interface SamplerPlan {
  name: string;
  /**
   * Model times in execution order (what the model is called with, e.g. 999, 995, ...;
   * fractional for DPM-Solver++). The k-th call has step index i = S-1-k, S = modelTimes.length.
   */
  modelTimes: number[];
}

/** Called once after each executed step, with the step the model was called at. */
export type StepCallback = (info: SamplerStep) => void;

/**
 * One generator per sample of the batch (lib/random's sampleRngs(seed, B)); samplers that need
 * no noise ignore it. Convention: x_T is drawn first from the same generators (initialLatent),
 * then the sampler continues each stream.
 */
export type SampleNoise = readonly Rng[];
