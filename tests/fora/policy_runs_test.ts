/**
 * The policies over whole sampling runs of the tiny random DiT (graphs built by fora
 * convert): dynamic with threshold 0 is bit-identical to no caching; a dynamic run, a
 * partial-reuse run and a forecast run each equal what their decisions mean on the literal
 * per-block cache (1e-5 relative) or, for forecast, reduce to the static run's plan; and an
 * old bundle without the probe output is refused with a "re-run fora convert" message.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { openDitStepModel } from "../../lib/models/dit/step_model.ts";
import {
  type CachePolicy,
  dynamicPolicy,
  forecastPolicy,
  partialPolicy,
  plannedKinds,
  reusedBlocks,
  staticPolicy,
  type StepKind,
} from "../../lib/fora/policy.ts";
import { literalDenoiser, residualDenoiser, type StepReport } from "../../lib/fora/denoiser.ts";
import { makeSampler } from "../../lib/samplers/mod.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import { FIXTURES, relError } from "../support.ts";

const STEPS = 20;

Deno.test("cache policies over whole runs of the tiny DiT", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "fora-policies-" });
  try {
    const { dir } = await convertBundle(join(FIXTURES, "dit-tiny", "original"), join(tmp, "bundle"), { precisions: ["fp32"] });
    const manifest = await readManifest(dir);
    const cfg = manifest.dit.config;
    const shape = { batch: 2, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
    const session = await openDitStepModel(dir, manifest, { cfgScale: 4, cfgChannels: "ref" }, { threads: 1 });
    const model = session.bind([3, 7]);
    const sampler = makeSampler("ddim", STEPS);
    const sample = async (route: "residual" | "literal", policy: CachePolicy | readonly StepKind[], reused?: boolean[]) => {
      const reports: StepReport[] = [];
      const denoiser = route === "residual"
        ? residualDenoiser(model, policy as CachePolicy, sampler.plan.modelTimes, (r) => reports.push(r))
        : literalDenoiser(model, policy as readonly StepKind[], (r) => reports.push(r), reused);
      const noise = sampleRngs(42, 2);
      const xT = batchNormals(noise, cfg.inChannels * cfg.inputSize ** 2);
      return { x0: await sampler.sample(denoiser, xT, shape, noise), kinds: reports.map((r) => r.kind), reports };
    };
    try {
      const uncached = await sample("residual", staticPolicy(STEPS, 1));

      await t.step("dynamic with threshold 0 is bit-identical to no caching", async () => {
        const d = await sample("residual", dynamicPolicy(STEPS, 0, 4));
        assert.deepEqual(d.kinds, Array(STEPS).fill("full"));
        assert.deepEqual(d.x0, uncached.x0);
      });

      await t.step("dynamic with a threshold reuses some steps, and equals the literal cache on its own decisions (1e-5)", async () => {
        const d = await sample("residual", dynamicPolicy(STEPS, 0.5, 4, { warmup: 2, cooldown: 2 }));
        const reuse = d.kinds.filter((k) => k === "reuse").length;
        assert.ok(reuse > 0 && reuse < STEPS - 4, `${reuse} reuse steps`);
        assert.ok(d.reports.some((r) => r.indicator !== undefined));
        const lit = await sample("literal", d.kinds);
        const err = relError(d.x0, lit.x0);
        assert.ok(err <= 1e-5, `relative error ${err}`);
        assert.ok(relError(d.x0, uncached.x0) > 1e-5, "the reuse steps changed the result");
      });

      const partials = [...new Set([1, cfg.depth - 1])].flatMap((blocks) => (["last", "first"] as const).map((end) => ({ end, blocks })));
      for (const partial of partials) {
        const what = `${partial.end} ${partial.blocks} of ${cfg.depth} blocks computed`;
        await t.step(`partial reuse, ${what}, N=3: residual route == literal cache (1e-5)`, async () => {
          const p = partialPolicy(STEPS, 3, partial, cfg.depth);
          const reused = reusedBlocks(p, cfg.depth);
          const a = await sample("residual", p);
          const b = await sample("literal", plannedKinds(p) as StepKind[], reused);
          const err = relError(a.x0, b.x0);
          assert.ok(err <= 1e-5, `relative error ${err}`);
          const reuseStep = a.reports.find((r) => r.kind === "reuse")!;
          assert.deepEqual(reuseStep.attnHits, reused);
          // Computing blocks brings the result closer to the uncached one than static FORA.
          const plain = await sample("residual", staticPolicy(STEPS, 3));
          assert.ok(relError(a.x0, uncached.x0) < relError(plain.x0, uncached.x0));
        });
      }

      await t.step("forecast runs static FORA's plan and changes only the reuse steps after the second full step", async () => {
        const f = await sample("residual", forecastPolicy(STEPS, 3));
        const s = await sample("residual", staticPolicy(STEPS, 3));
        assert.deepEqual(f.kinds, s.kinds);
        assert.ok(f.x0.every(Number.isFinite));
        assert.ok(f.reports.filter((r) => r.forecast).length > 0);
        assert.notDeepEqual(f.x0, s.x0);
      });
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
