import assert from "node:assert/strict";
import { join } from "node:path";
import {
  parsePythonJson,
  parseSchedulerConfig,
  PIXART_DDIM_DEFAULT,
  readPipelineScheduler,
  SCHEDULER_CONFIG,
} from "../../lib/bundle/scheduler_config.ts";
import { FIXTURES, withTempDir } from "./helpers.ts";

/** PixArt-XL-2-1024-MS's and PixArt-Sigma-XL-2-1024-MS's scheduler_config.json, as Python wrote it. */
const PUBLISHED = `{
  "_class_name": "DPMSolverMultistepScheduler",
  "_diffusers_version": "0.22.0.dev0",
  "algorithm_type": "dpmsolver++",
  "beta_end": 0.02,
  "beta_schedule": "linear",
  "beta_start": 0.0001,
  "dynamic_thresholding_ratio": 0.995,
  "euler_at_final": false,
  "lambda_min_clipped": -Infinity,
  "lower_order_final": true,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "sample_max_value": 1.0,
  "solver_order": 2,
  "solver_type": "midpoint",
  "steps_offset": 0,
  "thresholding": false,
  "timestep_spacing": "linspace",
  "trained_betas": null,
  "use_karras_sigmas": false,
  "use_lu_lambdas": false,
  "variance_type": null
}`;

const parse = (o: Record<string, unknown>) => parseSchedulerConfig(o, "scheduler_config.json");

Deno.test("PixArt's published DPM-Solver++ config reads as DDIMScheduler.from_config reads it: linspace, x0 clipped, ending at 1", () => {
  const c = parseSchedulerConfig(parsePythonJson(PUBLISHED, "published"), "published");
  assert.deepEqual(c, PIXART_DDIM_DEFAULT);
  assert.deepEqual([c.timestepSpacing, c.stepsOffset, c.clipSample, c.clipSampleRange, c.setAlphaToOne], ["linspace", 0, true, 1, true]);
});

Deno.test("keys a config lacks take DDIMScheduler's defaults ('leading' spacing); those it has are kept", () => {
  assert.deepEqual(parse({ _class_name: "DPMSolverMultistepScheduler" }), { ...PIXART_DDIM_DEFAULT, timestepSpacing: "leading" });
  const c = parse({
    timestep_spacing: "trailing",
    steps_offset: 1,
    clip_sample: false,
    clip_sample_range: 2,
    set_alpha_to_one: false,
    beta_schedule: "scaled_linear",
    beta_start: 0.00085,
    beta_end: 0.012,
    num_train_timesteps: 500,
  });
  assert.deepEqual(c, {
    numTrainTimesteps: 500,
    betaStart: 0.00085,
    betaEnd: 0.012,
    betaSchedule: "scaled_linear",
    timestepSpacing: "trailing",
    stepsOffset: 1,
    setAlphaToOne: false,
    clipSample: false,
    clipSampleRange: 2,
  });
});

Deno.test("what fora's samplers do not follow, and values out of range, are refused naming the key", () => {
  assert.throws(() => parse({ prediction_type: "v_prediction" }), /"prediction_type": "v_prediction" asks for a model that predicts/);
  assert.throws(() => parse({ thresholding: true }), /"thresholding": true asks for dynamic thresholding/);
  assert.throws(() => parse({ trained_betas: [0.1, 0.2] }), /"trained_betas".*a list of betas/);
  assert.throws(() => parse({ rescale_betas_zero_snr: true }), /zero terminal SNR/);
  assert.throws(
    () => parse({ timestep_spacing: "uniform" }),
    /"timestep_spacing" must be one of "leading", "linspace", "trailing", found "uniform"/,
  );
  assert.throws(() => parse({ beta_schedule: "squaredcos_cap_v2" }), /"beta_schedule" must be one of "linear", "scaled_linear"/);
  assert.throws(() => parse({ steps_offset: -1 }), /"steps_offset" must be a non-negative integer, found -1/);
  assert.throws(() => parse({ beta_end: 2 }), /"beta_end" must be at most 1, found 2/);
  assert.throws(() => parse({ clip_sample: "yes" }), /"clip_sample" must be true or false/);
  assert.throws(() => parsePythonJson("{", "x.json"), /x\.json: not valid JSON/);
  assert.deepEqual(parsePythonJson('{"a": NaN, "b": "-Infinity", "c": [Infinity]}', "x"), { a: null, b: "-Infinity", c: [null] });
});

Deno.test("a pipeline folder's scheduler config is read from scheduler/; without one, PixArt's published setting", async () => {
  assert.deepEqual((await readPipelineScheduler(join(FIXTURES, "pixart-tiny", "diffusers"))).timestepSpacing, "leading");
  await withTempDir(async (dir) => {
    assert.deepEqual(await readPipelineScheduler(dir), PIXART_DDIM_DEFAULT);
    await Deno.mkdir(join(dir, "scheduler"));
    await Deno.writeTextFile(join(dir, SCHEDULER_CONFIG), PUBLISHED.replace('"linspace"', '"trailing"'));
    assert.equal((await readPipelineScheduler(dir)).timestepSpacing, "trailing");
  });
});
