/**
 * FORA through residuals equals FORA's literal per-layer cache, over whole sampling
 * runs on the tiny random DiT: N = 1 is bit-identical to an uncached run, and for
 * N = 2, 3, 5 the final latents of the residual route and the literal per-block cache
 * agree within 1e-5 relative (max abs diff / max abs value), for DDPM and DDIM. The same
 * holds in int8 graphs within 3e-5 (measured: at most 3.0e-6): both routes quantize the same
 * activations, but a last-bit difference from the residual sum can move a value across a
 * rounding step of the activation quantizer at the next full step.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { openDitStepModel } from "../../lib/models/dit/step_model.ts";
import { countFull, staticKinds, staticPolicy } from "../../lib/fora/policy.ts";
import { literalDenoiser, residualDenoiser } from "../../lib/fora/denoiser.ts";
import { makeSampler } from "../../lib/samplers/mod.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import { FIXTURES, relError } from "../support.ts";

const STEPS = 24;
const BOUND = { fp32: 1e-5, int8: 3e-5 };
const RUNS = (["fp32", "int8"] as const).flatMap((precision) => ["ddpm", "ddim"].map((sampler) => ({ precision, sampler })));

Deno.test("FORA static caching: the residual route equals the literal per-layer cache over whole runs", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "fora-eq-" });
  try {
    const { dir } = await convertBundle(join(FIXTURES, "dit-tiny", "original"), join(tmp, "bundle"), { precisions: ["fp32", "int8"] });
    const manifest = await readManifest(dir);
    const cfg = manifest.dit.config;
    const shape = { batch: 2, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
    const open = (precision: "fp32" | "int8") =>
      openDitStepModel(dir, manifest, { cfgScale: 4, cfgChannels: "ref" }, { threads: 1, precision });
    const sessions = { fp32: await open("fp32"), int8: await open("int8") };
    let model = sessions.fp32.bind([3, 7]);
    const run = async (sampler: string, interval: number, route: "residual" | "literal") => {
      const s = makeSampler(sampler, STEPS);
      const policy = staticPolicy(STEPS, interval), planned = staticKinds(STEPS, interval);
      const kinds: string[] = [];
      const onStep = (r: { kind: string }) => kinds.push(r.kind);
      const denoiser = route === "residual"
        ? residualDenoiser(model, policy, s.plan.modelTimes, onStep)
        : literalDenoiser(model, planned, onStep);
      const noise = sampleRngs(42, 2);
      const xT = batchNormals(noise, cfg.inChannels * cfg.inputSize ** 2);
      const x0 = await s.sample(denoiser, xT, shape, noise);
      assert.deepEqual(kinds, planned, "every step ran as planned");
      return { x0, full: countFull(planned) };
    };
    try {
      for (const { precision, sampler } of RUNS) {
        model = sessions[precision].bind([3, 7]);
        await t.step(`${precision} ${sampler}: N=1 computes every step and matches the uncached per-block path (1e-6)`, async () => {
          const cached = await run(sampler, 1, "residual");
          const plain = await run(sampler, 1, "literal");
          assert.equal(cached.full, STEPS);
          assert.ok(cached.x0.every((v) => Number.isFinite(v)));
          // Both routes run the same full-model arithmetic; only graph layout differs.
          assert.ok(relError(cached.x0, plain.x0) <= 1e-6);
        });
        for (const interval of [2, 3, 5]) {
          await t.step(
            `${precision} ${sampler}: N=${interval} residual route == literal per-layer cache (${BOUND[precision].toExponential()})`,
            async () => {
              const a = await run(sampler, interval, "residual");
              const b = await run(sampler, interval, "literal");
              assert.ok(a.full < STEPS);
              const err = relError(a.x0, b.x0);
              assert.ok(err <= BOUND[precision], `relative error ${err}`);
              // And caching does change the result: the comparison is not vacuous.
              const uncached = await run(sampler, 1, "residual");
              assert.ok(relError(a.x0, uncached.x0) > 1e-4);
            },
          );
        }
      }
    } finally {
      await sessions.fp32.release();
      await sessions.int8.release();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
