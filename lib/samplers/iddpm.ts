/**
 * IDDPM, PixArt-alpha's other sampler: guided-diffusion's respaced DDPM (PixArt's IDDPM(str(100))
 * with learned-range variance, p_sample_loop, clip_denoised=False). That is exactly DDPM with 100
 * steps, so this is a preset of ddpm.ts and nothing else.
 */
import { type DdpmOptions, type DdpmPlan, planDdpm, sampleDdpm } from "./ddpm.ts";

export const IDDPM_DEFAULT_STEPS = 100;

export function planIddpm(opts: DdpmOptions = {}): DdpmPlan {
  return { ...planDdpm({ ...opts, steps: opts.steps ?? IDDPM_DEFAULT_STEPS }), name: "iddpm" };
}

export const sampleIddpm = sampleDdpm;
