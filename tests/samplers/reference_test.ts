/**
 * Whole runs against the reference implementations: reference_golden.json holds what DiT's
 * diffusion package (p_sample_loop, ddim_sample_loop) and dpm_solver_pytorch.py (DPM-Solver++
 * multistep, as PixArt-alpha ships it) produce for the toy model of helpers.ts, in float64, with
 * the noise drawn from lib/random's per-sample generators (see reference_samplers.py). The
 * samplers here keep latents in float32 between steps, hence the 2e-6 tolerance (measured: 0.8e-7 to 5.3e-7).
 */
import assert from "node:assert/strict";
import { initialLatent, makeSampler, type SamplerOptions } from "../../lib/samplers/mod.ts";
import { sampleRngs } from "../../lib/random/mod.ts";
import type { LatentShape } from "../../lib/samplers/types.ts";
import { maxAbs, maxAbsDiff, toyModel } from "./helpers.ts";

const golden = JSON.parse(await Deno.readTextFile(new URL("./reference_golden.json", import.meta.url)));
const [batch, channels, height, width] = golden.shape as number[];
const shape: LatentShape = { batch, channels, height, width };

const cases: [string, string, number, SamplerOptions][] = [
  ["ddpm250", "ddpm", 250, {}],
  ["ddpm100", "iddpm", 100, {}],
  ["ddpm50_fixed_small", "ddpm", 50, { learnSigma: false, fixedVariance: "small" }],
  ["ddpm50_fixed_large", "ddpm", 50, { learnSigma: false, fixedVariance: "large" }],
  ["ddim50", "ddim", 50, {}],
  ["ddim25_eta05", "ddim", 25, { eta: 0.5 }],
  ["dpm20", "dpm-solver++", 20, {}],
  ["dpm6", "dpm-solver++", 6, {}],
  ["dpm10_logsnr_taylor", "dpm-solver++", 10, { skipType: "logSNR", solverType: "taylor" }],
];

for (const [key, name, steps, opts] of cases) {
  Deno.test(`${name} ${steps} steps ${JSON.stringify(opts)} matches the reference run "${key}"`, async () => {
    const want = golden[key] as { modelTimes: number[]; x0: number[] };
    const sampler = makeSampler(name, steps, opts);
    assert.equal(sampler.plan.modelTimes.length, want.modelTimes.length);
    sampler.plan.modelTimes.forEach((m, k) =>
      assert.ok(Math.abs(m - want.modelTimes[k]) < 1e-9, `model time ${k}: ${m} vs ${want.modelTimes[k]}`)
    );
    const rngs = sampleRngs(golden.seed, batch);
    const xT = initialLatent(shape, rngs);
    const got = await sampler.sample(toyModel(shape, opts.learnSigma ?? true), xT, shape, rngs);
    const err = maxAbsDiff(got, want.x0) / maxAbs(want.x0);
    assert.ok(err < 2e-6, `relative error ${err}`);
  });
}
