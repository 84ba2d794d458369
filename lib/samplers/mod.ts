/**
 * The sampler registry: names, default steps, and one makeSampler that binds a plan to its
 * sampling function. The plan is ready before anything runs, so a caching planner can read
 * `plan.modelTimes` (and the step index i = S-1-k of each call) first.
 */
import { ForaError } from "../errors.ts";
import { DDIM_DEFAULT_STEPS, type DdimPlan, planDdim, sampleDdim } from "./ddim.ts";
import { DDPM_DEFAULT_STEPS, type DdpmPlan, planDdpm, sampleDdpm } from "./ddpm.ts";
import {
  DPM_SOLVER_DEFAULT_STEPS,
  type DpmSolverPlan,
  planDpmSolver,
  sampleDpmSolver,
  type SkipType,
  type SolverType,
} from "./dpm_solver.ts";
import { IDDPM_DEFAULT_STEPS, planIddpm, sampleIddpm } from "./iddpm.ts";
import type { DiffusersDdimConfig } from "./diffusers_schedule.ts";
import type { Denoiser, LatentShape, SampleNoise, StepCallback } from "./types.ts";

export type { Denoiser, LatentShape, SampleNoise, SamplerPlan, SamplerStep, StepCallback } from "./types.ts";
export type { DdimPlan, DdpmPlan, DpmSolverPlan };

export const samplerNames = ["ddpm", "ddim", "dpm-solver++", "iddpm"] as const;
export type SamplerName = typeof samplerNames[number];

export const defaultSteps: Readonly<Record<SamplerName, number>> = {
  "ddpm": DDPM_DEFAULT_STEPS,
  "ddim": DDIM_DEFAULT_STEPS,
  "dpm-solver++": DPM_SOLVER_DEFAULT_STEPS,
  "iddpm": IDDPM_DEFAULT_STEPS,
};

/** Options shared by the registry; each sampler reads the ones that apply to it. */
export interface SamplerOptions {
  /** Model outputs eps and variance values (2C channels). Default true (DiT, PixArt). */
  learnSigma?: boolean;
  /** ddpm/iddpm without learnSigma. Default "small". */
  fixedVariance?: "small" | "large";
  /** ddim. Default 0. */
  eta?: number;
  /** ddim: step as diffusers' DDIMScheduler with this scheduler config (PixArt bundles) instead of respacing as DiT. */
  diffusersDdim?: DiffusersDdimConfig;
  /** dpm-solver++. Defaults 2, "time_uniform", "midpoint", true. */
  order?: 1 | 2;
  skipType?: SkipType;
  solverType?: SolverType;
  lowerOrderFinal?: boolean;
  /** Training betas. Default: DiT's linear schedule, 1000 steps. */
  betas?: Float64Array;
}

export type AnyPlan = DdpmPlan | DdimPlan | DpmSolverPlan;

export interface Sampler {
  plan: AnyPlan;
  sample(model: Denoiser, xT: Float32Array, shape: LatentShape, noise: SampleNoise, onStep?: StepCallback): Promise<Float32Array>;
}

export function isSamplerName(name: string): name is SamplerName {
  return (samplerNames as readonly string[]).includes(name);
}

/** Plans `name` with `steps` (default: the sampler's own) and binds its sampling function. */
export function makeSampler(name: string, steps?: number, opts: SamplerOptions = {}): Sampler {
  if (!isSamplerName(name)) throw new ForaError("usage", `unknown sampler "${name}"; expected one of ${samplerNames.join(", ")}`);
  const n = steps ?? defaultSteps[name];
  const { learnSigma, betas } = opts;
  switch (name) {
    case "ddpm":
    case "iddpm": {
      const plan = (name === "ddpm" ? planDdpm : planIddpm)({ steps: n, learnSigma, betas, fixedVariance: opts.fixedVariance });
      const run = name === "ddpm" ? sampleDdpm : sampleIddpm;
      return { plan, sample: (model, xT, shape, noise, onStep) => run(model, xT, plan, shape, noise, onStep) };
    }
    case "ddim": {
      const plan = planDdim({ steps: n, learnSigma, betas, eta: opts.eta, diffusers: opts.diffusersDdim });
      return { plan, sample: (model, xT, shape, noise, onStep) => sampleDdim(model, xT, plan, shape, noise, onStep) };
    }
    case "dpm-solver++": {
      const { order, skipType, solverType, lowerOrderFinal } = opts;
      const plan = planDpmSolver({ steps: n, learnSigma, betas, order, skipType, solverType, lowerOrderFinal });
      return { plan, sample: (model, xT, shape, noise, onStep) => sampleDpmSolver(model, xT, plan, shape, noise, onStep) };
    }
  }
}

export { ddimSigma, ddimUpdate, planDdim, sampleDdim } from "./ddim.ts";
export * from "./diffusers_schedule.ts";
export { ddpmStep, planDdpm, sampleDdpm, type VarianceMode } from "./ddpm.ts";
export { dataPrediction, dpmSolverFirstUpdate, dpmSolverSecondUpdate, planDpmSolver, sampleDpmSolver } from "./dpm_solver.ts";
export { planIddpm, sampleIddpm } from "./iddpm.ts";
export { initialLatent } from "./io.ts";
export * from "./schedule.ts";
