import assert from "node:assert/strict";
import { defaultSteps, isSamplerName, makeSampler, samplerNames } from "../../lib/samplers/mod.ts";
import { sampleRngs } from "../../lib/random/mod.ts";
import { ForaError } from "../../lib/errors.ts";
import type { LatentShape } from "../../lib/samplers/types.ts";
import { toyModel } from "./helpers.ts";

Deno.test("the registry names four samplers with their default steps", () => {
  assert.deepEqual([...samplerNames], ["ddpm", "ddim", "dpm-solver++", "iddpm"]);
  assert.deepEqual({ ...defaultSteps }, { "ddpm": 250, "ddim": 50, "dpm-solver++": 20, "iddpm": 100 });
  for (const name of samplerNames) {
    const s = makeSampler(name);
    assert.equal(s.plan.name, name);
    assert.equal(s.plan.modelTimes.length, defaultSteps[name]);
    assert.equal(s.plan.modelTimes[0], 999);
  }
  assert.ok(isSamplerName("ddim") && !isSamplerName("euler"));
});

Deno.test("an unknown sampler or a bad step count is a usage error", () => {
  assert.throws(
    () => makeSampler("euler"),
    (e) => e instanceof ForaError && e.code === "usage" && /ddpm, ddim, dpm-solver\+\+, iddpm/.test(e.message),
  );
  assert.throws(() => makeSampler("ddpm", 0), ForaError);
  assert.throws(() => makeSampler("ddim", 1001), ForaError);
  assert.throws(() => makeSampler("dpm-solver++", 1), ForaError);
  assert.throws(() => makeSampler("ddim", 10, { eta: -1 }), ForaError);
});

Deno.test("every sampler reports each step once, in order, with i = S-1-k and the plan's model time", async () => {
  const shape: LatentShape = { batch: 1, channels: 2, height: 2, width: 3 };
  for (const name of samplerNames) {
    const sampler = makeSampler(name, 8);
    const seenByModel: { index: number; modelTime: number }[] = [];
    const reported: { k: number; index: number; modelTime: number }[] = [];
    const toy = toyModel(shape, true);
    const x = await sampler.sample(
      (x, step) => {
        seenByModel.push({ index: step.index, modelTime: step.modelTime });
        return toy(x, step);
      },
      new Float32Array(12).fill(0.1),
      shape,
      sampleRngs(0, 1),
      (info) => reported.push(info),
    );
    assert.equal(x.length, 12);
    assert.deepEqual(reported, sampler.plan.modelTimes.map((modelTime, k) => ({ k, index: 7 - k, modelTime })), name);
    assert.deepEqual(seenByModel, reported.map(({ index, modelTime }) => ({ index, modelTime })), name);
  }
});

Deno.test("a model without learned sigma is sampled with learnSigma: false", async () => {
  const shape: LatentShape = { batch: 1, channels: 2, height: 2, width: 3 };
  for (const name of samplerNames) {
    const sampler = makeSampler(name, 5, { learnSigma: false });
    const x = await sampler.sample(toyModel(shape, false), new Float32Array(12).fill(0.1), shape, sampleRngs(0, 1));
    assert.ok(x.every(Number.isFinite), name);
    await assert.rejects(makeSampler(name, 5).sample(toyModel(shape, false), new Float32Array(12), shape, sampleRngs(0, 1)), ForaError);
  }
});
