/**
 * DDIM over the same respaced schedule as DDPM (guided-diffusion's ddim_sample; DiT's
 * create_diffusion(str(S)) with ddim_sample_loop, clip_denoised=False). From abar = abar_i to
 * abar' = abar_prev_i (1 at the last step):
 *
 *   x0    = sqrt(1/abar) x - sqrt(1/abar - 1) eps
 *   sigma = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar')
 *   x'    = sqrt(abar') x0 + sqrt(1 - abar' - sigma^2) eps + sigma z
 *
 * The model's eps is used as is (the reference re-derives it from x0, which is the same number
 * up to rounding); with learnSigma the variance channels are ignored. With eta = 0 nothing is
 * drawn and the result is deterministic. With eta > 0, at every step but the last, sample b draws
 * C*H*W normals from noise[b], samples in order.
 */
import { ForaError } from "../errors.ts";
import { batchNormals } from "../random/seed.ts";
import { checkNoise, checkOutput, checkShape, sampleSize, splitOutput } from "./io.ts";
import { type DiscreteSchedule, linearBetas, respace } from "./schedule.ts";
import type { Denoiser, LatentShape, SampleNoise, SamplerPlan, StepCallback } from "./types.ts";

export interface DdimOptions {
  steps?: number;
  /** 0 (default): deterministic DDIM; 1: DDPM-like variance. */
  eta?: number;
  /** Model outputs 2C channels (eps, then variance values, which DDIM ignores). */
  learnSigma?: boolean;
  betas?: Float64Array;
}

export interface DdimPlan extends SamplerPlan {
  name: "ddim";
  /** Original timestep of respaced index i (ascending); modelTimes is this reversed. */
  timesteps: number[];
  schedule: DiscreteSchedule;
  eta: number;
  learnSigma: boolean;
}

export const DDIM_DEFAULT_STEPS = 50;

export function planDdim(opts: DdimOptions = {}): DdimPlan {
  const eta = opts.eta ?? 0;
  if (!(eta >= 0)) throw new ForaError("usage", `DDIM eta ${eta} must be >= 0`);
  const { timesteps, schedule } = respace(opts.steps ?? DDIM_DEFAULT_STEPS, opts.betas ?? linearBetas());
  return { name: "ddim", modelTimes: [...timesteps].reverse(), timesteps, schedule, eta, learnSigma: opts.learnSigma ?? true };
}

/** DDIM's sigma for a move from abarFrom to abarTo. */
export function ddimSigma(eta: number, abarFrom: number, abarTo: number): number {
  return eta * Math.sqrt((1 - abarTo) / (1 - abarFrom)) * Math.sqrt(1 - abarFrom / abarTo);
}

/**
 * The DDIM update of a whole latent from cumulative alpha abarFrom to abarTo, given eps, with
 * optional sigma and noise z (same length as x). Pure; float64 arithmetic per element.
 */
export function ddimUpdate(
  x: Float32Array,
  eps: Float32Array,
  abarFrom: number,
  abarTo: number,
  sigma = 0,
  z: Float32Array | null = null,
): Float32Array {
  if (sigma !== 0 && z === null) throw new ForaError("runtime", "a DDIM step with sigma > 0 needs noise");
  const a = Math.sqrt(1 / abarFrom), b = Math.sqrt(1 / abarFrom - 1);
  const c0 = Math.sqrt(abarTo), ce = Math.sqrt(1 - abarTo - sigma * sigma);
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const x0 = a * x[j] - b * eps[j];
    out[j] = c0 * x0 + ce * eps[j] + (sigma === 0 ? 0 : sigma * z![j]);
  }
  return out;
}

export async function sampleDdim(
  model: Denoiser,
  xT: Float32Array,
  plan: DdimPlan,
  shape: LatentShape,
  noise: SampleNoise,
  onStep?: StepCallback,
): Promise<Float32Array> {
  checkShape(shape, xT);
  if (plan.eta > 0) checkNoise(noise, shape, "ddim with eta > 0");
  const s = plan.schedule, steps = plan.timesteps.length;
  let x: Float32Array = Float32Array.from(xT);
  for (let k = 0; k < steps; k++) {
    const i = steps - 1 - k, modelTime = plan.timesteps[i];
    const step = { k, index: i, modelTime };
    const out = await model(x, step);
    checkOutput(out, shape, plan.learnSigma, modelTime);
    const { eps } = splitOutput(out, shape, plan.learnSigma);
    const abar = s.alphasCumprod[i], abarPrev = s.alphasCumprodPrev[i];
    const sigma = plan.eta > 0 ? ddimSigma(plan.eta, abar, abarPrev) : 0;
    const z = sigma > 0 ? batchNormals(noise, sampleSize(shape)) : null;
    x = ddimUpdate(x, eps, abar, abarPrev, sigma, z);
    onStep?.(step);
  }
  return x;
}
