/**
 * DDIM, over one of two schedules:
 *
 * - DiT's (default): the same respaced schedule as DDPM (guided-diffusion's ddim_sample; DiT's
 *   create_diffusion(str(S)) with ddim_sample_loop, clip_denoised=False), abar' = abar_prev_i
 *   (1 at the last step);
 * - diffusers' DDIMScheduler with a pipeline's scheduler config (`diffusers`; PixArt bundles,
 *   diffusers_schedule.ts): its timesteps, the abar' each of its steps moves to, and its
 *   clipping of x0 (clip_sample).
 *
 * From abar = abar_i to abar':
 *
 *   x0    = sqrt(1/abar) x - sqrt(1/abar - 1) eps       (clipped to [-r, r] with clip_sample)
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
import { linearBetas, respace } from "./schedule.ts";
import { type DiffusersDdimConfig, diffusersDdimSteps } from "./diffusers_schedule.ts";
import type { Denoiser, LatentShape, SampleNoise, SamplerPlan, StepCallback } from "./types.ts";

export interface DdimOptions {
  steps?: number;
  /** 0 (default): deterministic DDIM; 1: DDPM-like variance. */
  eta?: number;
  /** Model outputs 2C channels (eps, then variance values, which DDIM ignores). */
  learnSigma?: boolean;
  betas?: Float64Array;
  /** Step as diffusers' DDIMScheduler with this scheduler config does (its own betas; `betas` unused). */
  diffusers?: DiffusersDdimConfig;
}

export interface DdimPlan extends SamplerPlan {
  name: "ddim";
  /** Model time of step index i (ascending; DiT: the original timestep of respaced index i); modelTimes is this reversed. */
  timesteps: number[];
  /** abar at index i, and the abar' its step moves to. */
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  /** x0 is clipped to [-clipX0, clipX0]; null: not clipped. */
  clipX0: number | null;
  eta: number;
  learnSigma: boolean;
}

export const DDIM_DEFAULT_STEPS = 50;

export function planDdim(opts: DdimOptions = {}): DdimPlan {
  const eta = opts.eta ?? 0;
  if (!(eta >= 0)) throw new ForaError("usage", `DDIM eta ${eta} must be >= 0`);
  const steps = opts.steps ?? DDIM_DEFAULT_STEPS;
  const learnSigma = opts.learnSigma ?? true;
  if (opts.diffusers) {
    const d = opts.diffusers;
    const { timesteps, alphasCumprod, alphasCumprodPrev } = diffusersDdimSteps(steps, d);
    const clipX0 = d.clipSample ? d.clipSampleRange : null;
    return { name: "ddim", modelTimes: [...timesteps].reverse(), timesteps, alphasCumprod, alphasCumprodPrev, clipX0, eta, learnSigma };
  }
  const { timesteps, schedule } = respace(steps, opts.betas ?? linearBetas());
  const { alphasCumprod, alphasCumprodPrev } = schedule;
  return { name: "ddim", modelTimes: [...timesteps].reverse(), timesteps, alphasCumprod, alphasCumprodPrev, clipX0: null, eta, learnSigma };
}

/** DDIM's sigma for a move from abarFrom to abarTo. */
export function ddimSigma(eta: number, abarFrom: number, abarTo: number): number {
  return eta * Math.sqrt((1 - abarTo) / (1 - abarFrom)) * Math.sqrt(1 - abarFrom / abarTo);
}

/** What a DDIM update adds to the deterministic step: sigma with its noise z (same length as x), and x0's clipping. */
export interface DdimUpdateOptions {
  sigma?: number;
  z?: Float32Array | null;
  clipX0?: number | null;
}

/**
 * The DDIM update of a whole latent from cumulative alpha abarFrom to abarTo, given eps.
 * Pure; float64 arithmetic per element.
 */
export function ddimUpdate(
  x: Float32Array,
  eps: Float32Array,
  abarFrom: number,
  abarTo: number,
  opts: DdimUpdateOptions = {},
): Float32Array {
  const { sigma = 0, z = null, clipX0 = null } = opts;
  if (sigma !== 0 && z === null) throw new ForaError("runtime", "a DDIM step with sigma > 0 needs noise");
  const a = Math.sqrt(1 / abarFrom), b = Math.sqrt(1 / abarFrom - 1);
  const c0 = Math.sqrt(abarTo), ce = Math.sqrt(1 - abarTo - sigma * sigma);
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const x0 = a * x[j] - b * eps[j];
    const kept = clipX0 === null ? x0 : Math.min(Math.max(x0, -clipX0), clipX0);
    out[j] = c0 * kept + ce * eps[j] + (sigma === 0 ? 0 : sigma * z![j]);
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
  const steps = plan.timesteps.length;
  let x: Float32Array = Float32Array.from(xT);
  for (let k = 0; k < steps; k++) {
    const i = steps - 1 - k, modelTime = plan.timesteps[i];
    const step = { k, index: i, modelTime };
    const out = await model(x, step);
    checkOutput(out, shape, plan.learnSigma, modelTime);
    const { eps } = splitOutput(out, shape, plan.learnSigma);
    const abar = plan.alphasCumprod[i], abarPrev = plan.alphasCumprodPrev[i];
    const sigma = plan.eta > 0 ? ddimSigma(plan.eta, abar, abarPrev) : 0;
    const z = sigma > 0 ? batchNormals(noise, sampleSize(shape)) : null;
    x = ddimUpdate(x, eps, abar, abarPrev, { sigma, z, clipX0: plan.clipX0 });
    onStep?.(step);
  }
  return x;
}
