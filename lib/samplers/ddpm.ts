/**
 * DDPM ancestral sampling over a respaced schedule, as DiT's reference samples (guided-diffusion
 * p_sample with clip_denoised=False). At respaced index i, from the model's eps (and, with
 * learnSigma, its variance value v in [-1, 1]):
 *
 *   x0    = sqrt(1/abar_i) x - sqrt(1/abar_i - 1) eps
 *   mean  = coef1_i x0 + coef2_i x                      (posterior mean of q(x_{i-1} | x_i, x0))
 *   logv  = learned range: frac log(beta_i) + (1 - frac) min_log_i, frac = (v + 1)/2,
 *             min_log = clipped posterior log-variance
 *           fixed small:   min_log_i;   fixed large: log([posterior_var_1, beta_1, beta_2, ...])_i
 *   x_{i-1} = mean + exp(logv / 2) z,  with no noise at the last step (i = 0)
 *
 * Noise: at every step with i > 0, sample b draws C*H*W normals from its own generator noise[b],
 * samples in order 0..B-1, laid out [C, H, W]. Nothing is drawn at i = 0 (the reference draws and
 * discards there). Coefficients are float64 (the reference casts them to float32); latents are
 * float32 between steps.
 */
import { ForaError } from "../errors.ts";
import { batchNormals } from "../random/seed.ts";
import { checkNoise, checkOutput, checkShape, sampleSize, splitOutput } from "./io.ts";
import { type DiscreteSchedule, linearBetas, respace } from "./schedule.ts";
import type { Denoiser, LatentShape, SampleNoise, SamplerPlan, StepCallback } from "./types.ts";

export type VarianceMode = "learned-range" | "fixed-small" | "fixed-large";

export interface DdpmOptions {
  /** Respaced steps (DiT's reference: 250). */
  steps?: number;
  /** Model outputs 2C channels: eps, then variance values (DiT and PixArt: true). */
  learnSigma?: boolean;
  /**
   * Variance without learnSigma. Default "small" (posterior variance). Note that guided-diffusion's
   * create_diffusion(learn_sigma=False) picks "large" unless sigma_small=True.
   */
  fixedVariance?: "small" | "large";
  /** Training betas (default: DiT's linear schedule over 1000 steps). */
  betas?: Float64Array;
}

export interface DdpmPlan extends SamplerPlan {
  name: "ddpm" | "iddpm";
  /** Original timestep of respaced index i (ascending); modelTimes is this reversed. */
  timesteps: number[];
  schedule: DiscreteSchedule;
  learnSigma: boolean;
  variance: VarianceMode;
}

export const DDPM_DEFAULT_STEPS = 250;

export function planDdpm(opts: DdpmOptions = {}): DdpmPlan {
  const { timesteps, schedule } = respace(opts.steps ?? DDPM_DEFAULT_STEPS, opts.betas ?? linearBetas());
  const learnSigma = opts.learnSigma ?? true;
  return {
    name: "ddpm",
    modelTimes: [...timesteps].reverse(),
    timesteps,
    schedule,
    learnSigma,
    variance: learnSigma ? "learned-range" : opts.fixedVariance === "large" ? "fixed-large" : "fixed-small",
  };
}

/**
 * One p_sample step at respaced index i: x_{i-1} from x_i, the model's eps and variance values
 * (v: null unless the plan's variance is learned), and z (C*H*W normals per sample; null at i=0).
 */
export function ddpmStep(
  plan: DdpmPlan,
  i: number,
  x: Float32Array,
  eps: Float32Array,
  v: Float32Array | null,
  z: Float32Array | null,
): Float32Array {
  const s = plan.schedule;
  if (plan.variance === "learned-range" && v === null) {
    throw new ForaError("runtime", "learned-range variance needs the model's variance values");
  }
  if (i > 0 && z === null) throw new ForaError("runtime", `DDPM step ${i} needs noise`);
  const a = s.sqrtRecipAlphasCumprod[i], b = s.sqrtRecipm1AlphasCumprod[i];
  const c1 = s.posteriorMeanCoef1[i], c2 = s.posteriorMeanCoef2[i];
  const minLog = s.posteriorLogVarianceClipped[i], maxLog = s.logBetas[i];
  const fixedLog = plan.variance === "fixed-large" ? s.fixedLargeLogVariance[i] : minLog;
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const x0 = a * x[j] - b * eps[j];
    const mean = c1 * x0 + c2 * x[j];
    if (i === 0) {
      out[j] = mean;
      continue;
    }
    let logVar = fixedLog;
    if (v !== null && plan.variance === "learned-range") {
      const frac = (v[j] + 1) / 2;
      logVar = frac * maxLog + (1 - frac) * minLog;
    }
    out[j] = mean + Math.exp(0.5 * logVar) * z![j];
  }
  return out;
}

/** Runs the plan from xT (float32 [B, C, H, W]) and returns the final latent x_0. */
export async function sampleDdpm(
  model: Denoiser,
  xT: Float32Array,
  plan: DdpmPlan,
  shape: LatentShape,
  noise: SampleNoise,
  onStep?: StepCallback,
): Promise<Float32Array> {
  checkShape(shape, xT);
  checkNoise(noise, shape, plan.name);
  const steps = plan.timesteps.length;
  let x: Float32Array = Float32Array.from(xT);
  for (let k = 0; k < steps; k++) {
    const i = steps - 1 - k, modelTime = plan.timesteps[i];
    const step = { k, index: i, modelTime };
    const out = await model(x, step);
    checkOutput(out, shape, plan.learnSigma, modelTime);
    const { eps, v } = splitOutput(out, shape, plan.learnSigma);
    const z = i > 0 ? batchNormals(noise, sampleSize(shape)) : null;
    x = ddpmStep(plan, i, x, eps, v, z);
    onStep?.(step);
  }
  return x;
}
