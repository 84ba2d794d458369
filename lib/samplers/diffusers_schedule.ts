/**
 * diffusers' DDIMScheduler as a pipeline's scheduler config sets it up
 * (`DDIMScheduler.from_config(pipe.scheduler.config)`, what PixArt's pipelines are run with),
 * in float64: its training betas, the timesteps of set_timesteps(S) and the cumulative alpha
 * each step moves to. Unlike guided-diffusion's respacing (schedule.ts: DiT), the timesteps
 * are not re-derived as a diffusion of their own: a step at t moves to t - N // S whatever
 * the next timestep is (with "linspace" spacing, 999 -> 874 while the next call is at 856),
 * and a step that would go below 0 moves to `setAlphaToOne ? 1 : alpha_cumprod[0]`.
 */
import { ForaError } from "../errors.ts";
import { checkSteps } from "./io.ts";
import { linspace, roundHalfEven } from "./schedule.ts";

export const TIMESTEP_SPACINGS = ["leading", "linspace", "trailing"] as const;
export type TimestepSpacing = typeof TIMESTEP_SPACINGS[number];
export const BETA_SCHEDULES = ["linear", "scaled_linear"] as const;
export type BetaSchedule = typeof BETA_SCHEDULES[number];

/** The settings DDIMScheduler takes from a scheduler config (its keys in camelCase). */
export interface DiffusersDdimConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  timestepSpacing: TimestepSpacing;
  /** Added to the "leading" timesteps (the other spacings ignore it, as diffusers does). */
  stepsOffset: number;
  /** The last step moves to alpha_cumprod 1 (true) or to alpha_cumprod[0]. */
  setAlphaToOne: boolean;
  /** The predicted x0 is clipped to [-clipSampleRange, clipSampleRange]. */
  clipSample: boolean;
  clipSampleRange: number;
}

/** The training betas of the config ("linear": evenly spaced; "scaled_linear": evenly spaced square roots, squared). */
export function configBetas(c: DiffusersDdimConfig): Float64Array {
  if (c.betaSchedule === "linear") return linspace(c.betaStart, c.betaEnd, c.numTrainTimesteps);
  return linspace(Math.sqrt(c.betaStart), Math.sqrt(c.betaEnd), c.numTrainTimesteps).map((b) => b * b);
}

/** set_timesteps(steps): the model times in call order (descending). */
export function diffusersTimesteps(steps: number, c: DiffusersDdimConfig): number[] {
  const n = c.numTrainTimesteps;
  checkSteps(steps, n, "DDIM");
  let t: number[];
  switch (c.timestepSpacing) {
    case "linspace":
      t = Array.from(linspace(0, n - 1, steps), roundHalfEven).reverse();
      break;
    case "leading": {
      const ratio = Math.floor(n / steps);
      t = Array.from({ length: steps }, (_, j) => j * ratio + c.stepsOffset).reverse();
      break;
    }
    case "trailing":
      t = numpyArange(n, 0, -n / steps).map((v) => roundHalfEven(v) - 1);
      if (t.length !== steps) {
        throw new ForaError(
          "usage",
          `DDIM with "trailing" timestep spacing at ${steps} steps: diffusers makes ${t.length} timesteps of it (its float stride ` +
            `${n}/${steps} rounds over); use ${steps - 1} or ${steps + 1} steps`,
        );
      }
      break;
  }
  if (t[0] > n - 1) {
    throw new ForaError(
      "usage",
      `DDIM with steps_offset ${c.stepsOffset} and ${steps} steps starts at timestep ${t[0]}, past the last training timestep ${
        n - 1
      }; use fewer steps`,
    );
  }
  return t;
}

/**
 * numpy.arange(start, stop, step) over floats: ceil((stop - start) / step) values, the i-th
 * start + i * d where d = (start + step) - start (numpy fills from the first two values).
 */
function numpyArange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const d = (start + step) - start;
  return Array.from({ length }, (_, i) => start + i * d);
}

/** Per step index i (ascending timesteps, i = S-1-k): the timestep, its alpha_cumprod and the one its step moves to. */
export interface DiffusersDdimSteps {
  timesteps: number[];
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
}

export function diffusersDdimSteps(steps: number, c: DiffusersDdimConfig): DiffusersDdimSteps {
  const timesteps = diffusersTimesteps(steps, c).reverse();
  const abar = new Float64Array(c.numTrainTimesteps);
  let acp = 1;
  configBetas(c).forEach((beta, t) => (abar[t] = acp *= 1 - beta));
  const final = c.setAlphaToOne ? 1 : abar[0];
  const stride = Math.floor(c.numTrainTimesteps / steps);
  return {
    timesteps,
    alphasCumprod: Float64Array.from(timesteps, (t) => abar[t]),
    alphasCumprodPrev: Float64Array.from(timesteps, (t) => (t - stride >= 0 ? abar[t - stride] : final)),
  };
}
