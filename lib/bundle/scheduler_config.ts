/**
 * A diffusers pipeline's `scheduler/scheduler_config.json`, read as
 * `DDIMScheduler.from_config(pipe.scheduler.config)` reads it: the keys DDIMScheduler has, its
 * own defaults for those the file lacks, the others ignored. PixArt's published configs are
 * DPM-Solver++ ones without `clip_sample` or `set_alpha_to_one`, so DDIM clips x0 to [-1, 1]
 * and ends at alpha_cumprod 1; their `"lambda_min_clipped": -Infinity` is Python's JSON, read
 * here as null. PixArt bundles record the result in the manifest (`pixart.scheduler`), and
 * `--sampler ddim` follows it (lib/samplers/diffusers_schedule.ts).
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";
import { asObject, bool, type ConfigObject, positiveInt, positiveNumber } from "../models/config_fields.ts";
import { BETA_SCHEDULES, type DiffusersDdimConfig, TIMESTEP_SPACINGS } from "../samplers/diffusers_schedule.ts";
import { bool as boolSchema, count, intUpTo, obj, oneOf, positive } from "./schema.ts";

export const SCHEDULER_CONFIG = join("scheduler", "scheduler_config.json");

/** DDIMScheduler's defaults, for the keys a config lacks. */
const DDIM_DEFAULTS: DiffusersDdimConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: "linear",
  timestepSpacing: "leading",
  stepsOffset: 0,
  setAlphaToOne: true,
  clipSample: true,
  clipSampleRange: 1,
};

/**
 * What DDIM reads from PixArt's published scheduler config (PixArt-XL-2-1024-MS's and
 * PixArt-Sigma-XL-2-1024-MS's: "linspace" spacing, steps offset 0): the setting of bundles
 * that recorded none (written before it was recorded, or converted from an original checkpoint).
 */
export const PIXART_DDIM_DEFAULT: DiffusersDdimConfig = { ...DDIM_DEFAULTS, timestepSpacing: "linspace" };

/** Bounds of the recorded values, far above any real config's (1000 timesteps; x0 clipped to [-1, 1] when at all). */
const MAX_TRAIN_TIMESTEPS = 100_000;
const MAX_CLIP_SAMPLE_RANGE = 1e6;

/** Keys whose non-default values DDIM would follow and fora's samplers do not, with what they ask for. */
const REFUSED: [key: string, fine: (v: unknown) => boolean, what: string][] = [
  ["prediction_type", (v) => v === undefined || v === "epsilon", "a model that predicts something other than the noise"],
  ["trained_betas", (v) => v === undefined || v === null, "a noise schedule given as a list of betas"],
  ["thresholding", (v) => v === undefined || v === false, "dynamic thresholding of x0"],
  ["rescale_betas_zero_snr", (v) => v === undefined || v === false, "betas rescaled to zero terminal SNR"],
];

/** The DDIM settings of a pipeline folder: its scheduler config's, or PixArt's published ones when it has none. */
export async function readPipelineScheduler(root: string): Promise<DiffusersDdimConfig> {
  const path = join(root, SCHEDULER_CONFIG);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return PIXART_DDIM_DEFAULT;
    throw new ForaError("bundle", `${path}: cannot read: ${(e as Error).message}`);
  }
  return parseSchedulerConfig(parsePythonJson(text, path), path);
}

/** JSON as Python's json module writes it: NaN, Infinity and -Infinity outside strings read as null. */
export function parsePythonJson(text: string, where: string): unknown {
  const json = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : "null"));
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new ForaError("bundle", `${where}: not valid JSON (${(e as Error).message})`);
  }
}

export function parseSchedulerConfig(json: unknown, where: string): DiffusersDdimConfig {
  const o = asObject(json, where);
  for (const [key, fine, what] of REFUSED) {
    if (!fine(o[key])) {
      throw new ForaError(
        "bundle",
        `${where}: "${key}": ${JSON.stringify(o[key])} asks for ${what}, which fora's samplers do not follow; use a pipeline without it`,
      );
    }
  }
  const given = (key: string) => o[key] !== undefined && o[key] !== null;
  const d = DDIM_DEFAULTS;
  const c: DiffusersDdimConfig = {
    numTrainTimesteps: given("num_train_timesteps") ? positiveInt(o, "num_train_timesteps", where) : d.numTrainTimesteps,
    betaStart: given("beta_start") ? positiveNumber(o, "beta_start", where) : d.betaStart,
    betaEnd: given("beta_end") ? positiveNumber(o, "beta_end", where) : d.betaEnd,
    betaSchedule: given("beta_schedule") ? choice(o, "beta_schedule", BETA_SCHEDULES, where) : d.betaSchedule,
    timestepSpacing: given("timestep_spacing") ? choice(o, "timestep_spacing", TIMESTEP_SPACINGS, where) : d.timestepSpacing,
    stepsOffset: given("steps_offset") ? nonNegativeInt(o, "steps_offset", where) : d.stepsOffset,
    setAlphaToOne: bool(o, "set_alpha_to_one", where, d.setAlphaToOne),
    clipSample: bool(o, "clip_sample", where, d.clipSample),
    clipSampleRange: given("clip_sample_range") ? positiveNumber(o, "clip_sample_range", where) : d.clipSampleRange,
  };
  const atMost = (key: string, v: number, max: number) => {
    if (v > max) throw new ForaError("bundle", `${where}: "${key}" must be at most ${max}, found ${v}`);
  };
  atMost("num_train_timesteps", c.numTrainTimesteps, MAX_TRAIN_TIMESTEPS);
  atMost("beta_start", c.betaStart, 1);
  atMost("beta_end", c.betaEnd, 1);
  atMost("clip_sample_range", c.clipSampleRange, MAX_CLIP_SAMPLE_RANGE);
  return c;
}

function choice<T extends string>(o: ConfigObject, key: string, values: readonly T[], where: string): T {
  const v = o[key];
  if (!values.includes(v as T)) {
    throw new ForaError(
      "bundle",
      `${where}: "${key}" must be one of ${values.map((s) => JSON.stringify(s)).join(", ")}, found ${JSON.stringify(v)}`,
    );
  }
  return v as T;
}

function nonNegativeInt(o: ConfigObject, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ForaError("bundle", `${where}: "${key}" must be a non-negative integer, found ${JSON.stringify(v)}`);
  }
  return v;
}

/** The manifest schema of `pixart.scheduler`. */
export function schedulerSchema() {
  return obj({
    numTrainTimesteps: intUpTo(MAX_TRAIN_TIMESTEPS),
    betaStart: positive(1),
    betaEnd: positive(1),
    betaSchedule: oneOf(BETA_SCHEDULES),
    timestepSpacing: oneOf(TIMESTEP_SPACINGS),
    stepsOffset: count(MAX_TRAIN_TIMESTEPS),
    setAlphaToOne: boolSchema(),
    clipSample: boolSchema(),
    clipSampleRange: positive(MAX_CLIP_SAMPLE_RANGE),
  });
}
