/**
 * PixArt-alpha graphs against the PyTorch reference goldens (tools/reference/pixart.py) on the
 * tiny random-weight model of fixtures/pixart-tiny, in both naming schemes: every graph within
 * 1e-4 relative in fp32 (max abs diff / max abs reference); the FORA residual route equals the
 * literal per-block cache within 1e-5, with cross-attention cached and recomputed, for single
 * steps and over whole DPM-Solver++ and IDDPM runs.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { buildPixartGraphs } from "../../lib/models/pixart/graphs.ts";
import { guidanceMask } from "../../kernels/guidance.ts";
import { parsePixartDiffusersConfig, parsePixartOriginalConfig, type PixartConfig } from "../../lib/models/pixart/config.ts";
import { f32, type HostTensor } from "../../lib/runtime/session.ts";
import { FIXTURES, readGolden, relError, sessionFor, tempBundle } from "../support.ts";
import { writeModel } from "../../lib/onnx/serialize.ts";
import { openPixartStepModel } from "../../lib/models/pixart/step_model.ts";
import { staticKinds, staticPolicy } from "../../lib/fora/policy.ts";
import { literalDenoiser, residualDenoiser } from "../../lib/fora/denoiser.ts";
import { makeSampler } from "../../lib/samplers/mod.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";

const FIX = join(FIXTURES, "pixart-tiny");

async function fixtureConfig(naming: "original" | "diffusers"): Promise<{ cfg: PixartConfig; weights: string }> {
  const dir = naming === "original" ? join(FIX, "original") : join(FIX, "diffusers", "transformer");
  const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  return { cfg: naming === "original" ? parsePixartOriginalConfig(json, dir) : parsePixartDiffusersConfig(json, dir), weights: dir };
}

type Golden = Map<string, { data: Float32Array; shape: number[] }>;

function stack(golden: Golden, prefix: string, n: number): HostTensor {
  const parts = Array.from({ length: n }, (_, k) => golden.get(`${prefix}.${k}`)!);
  const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  parts.forEach((p, k) => data.set(p.data, k * p.data.length));
  return f32([n, ...parts[0].shape], data);
}

for (const naming of ["original", "diffusers"] as const) {
  Deno.test(`PixArt tiny (${naming} naming) matches the PyTorch reference in every graph`, async (t) => {
    const { cfg, weights } = await fixtureConfig(naming);
    const golden: Golden = await readGolden(join(FIX, "golden-pixart.safetensors"));
    const G = (n: string) => golden.get(n)!;
    const bundle = await tempBundle(weights);
    const L = cfg.depth;
    try {
      const graphs = buildPixartGraphs(bundle.src, cfg, { computeType: "float32", cfg: true });
      const text = await sessionFor(bundle.dir, "text.onnx", graphs.text);
      const cond = await text.run({ caption: f32(G("caption_cond").shape, G("caption_cond").data) });
      const uncond = await text.run({ caption: f32(G("caption_uncond").shape, G("caption_uncond").data) });
      await text.release();
      const tReuse = G("t_reuse").data;
      const step = (x: { data: Float32Array; shape: number[] }, tval: number, mode: "ref" | "all" = "all") => ({
        latent: f32(x.shape, x.data),
        timestep: f32([1], [tval]),
        cond_k: cond.text_k,
        cond_v: cond.text_v,
        uncond_k: uncond.text_k,
        uncond_v: uncond.text_v,
        guidance_scale: f32([1], G("cfg_scale").data),
        guidance_mask: f32([2 * cfg.inChannels], guidanceMask(cfg, mode)),
      });
      const n = G("residual.0").data.length;
      let residuals: Float32Array;

      await t.step("text graph: caption projection and every block's cross-attention keys and values", () => {
        assert.ok(relError(cond.text_k.data as Float32Array, stack(golden, "text_k", L).data as Float32Array) <= 1e-4, "text_k");
        assert.ok(relError(cond.text_v.data as Float32Array, stack(golden, "text_v", L).data as Float32Array) <= 1e-4, "text_v");
      });

      await t.step("full step: guided output (all and ref channels) and residuals R_j with cross-attention", async () => {
        const full = await sessionFor(bundle.dir, "full.onnx", graphs.full);
        for (const mode of ["all", "ref"] as const) {
          const out = await full.run({ ...step(G("x"), G("t").data[0], mode), reuse_timesteps: f32([2], tReuse) });
          const err = relError(out.model_out.data as Float32Array, G(`out_${mode}`).data);
          assert.ok(err <= 1e-4, `out_${mode}: ${err}`);
          residuals = out.residuals.data as Float32Array;
        }
        for (let j = 0; j < 2; j++) {
          assert.ok(relError(residuals.subarray(j * n, (j + 1) * n), G(`residual.${j}`).data) <= 1e-4, `residual.${j}`);
        }
        await full.release();
      });

      await t.step("reuse step from R_j matches the literal FORA reuse step with cross-attention cached", async () => {
        const reuse = await sessionFor(bundle.dir, "reuse.onnx", graphs.reuse);
        for (let j = 0; j < 2; j++) {
          const out = await reuse.run({
            ...step(G("x_reuse"), tReuse[j]),
            residual: f32(G("residual.0").shape, residuals.slice(j * n, (j + 1) * n)),
          });
          assert.ok(relError(out.model_out.data as Float32Array, G(`reuse_out.${j}`).data) <= 1e-4, `reuse ${j}`);
        }
        await reuse.release();
      });

      await t.step("full_xr and reuse_xr: cross-attention recomputed on reuse steps", async () => {
        const full = await sessionFor(bundle.dir, "full_xr.onnx", graphs["full_xr"]);
        const out = await full.run(step(G("x"), G("t").data[0]));
        assert.ok(relError(out.model_out.data as Float32Array, G("out_all").data) <= 1e-4, "full_xr out");
        const features = out.features.data as Float32Array, half = features.length / 2;
        assert.ok(relError(features.subarray(0, half), stack(golden, "attn", L).data as Float32Array) <= 1e-4, "A_k");
        assert.ok(relError(features.subarray(half), stack(golden, "mlp", L).data as Float32Array) <= 1e-4, "M_k");
        const reuse = await sessionFor(bundle.dir, "reuse_xr.onnx", graphs["reuse_xr"]);
        for (let j = 0; j < 2; j++) {
          const r = await reuse.run({ ...step(G("x_reuse"), tReuse[j]), features: out.features });
          assert.ok(relError(r.model_out.data as Float32Array, G(`reuse_xr_out.${j}`).data) <= 1e-4, `reuse_xr ${j}`);
        }
        await full.release();
        await reuse.release();
      });

      await t.step("per-block literal path: computes A_k/X_k/M_k, and with cached blocks equals both reuse graphs (1e-5)", async () => {
        const blocks = await sessionFor(bundle.dir, "blocks.onnx", graphs.blocks);
        const reuse = await sessionFor(bundle.dir, "reuse2.onnx", graphs.reuse);
        const reuseXr = await sessionFor(bundle.dir, "reuse_xr2.onnx", graphs["reuse_xr"]);
        const zeros = f32([L, ...G("attn.0").shape]);
        const flags = (v: number) => ({ dtype: "bool" as const, shape: [L], data: new Uint8Array(L).fill(v) });
        const computed = await blocks.run({
          ...step(G("x"), G("t").data[0]),
          reuse: flags(0),
          reuse_cross: flags(0),
          cached_attn: zeros,
          cached_cross: zeros,
          cached_mlp: zeros,
        });
        assert.ok(relError(computed.model_out.data as Float32Array, G("out_all").data) <= 1e-4, "blocks full");
        for (const [name, key] of [["attn", "attn"], ["cross", "cross"], ["mlp", "mlp"]]) {
          assert.ok(relError(computed[name].data as Float32Array, stack(golden, key, L).data as Float32Array) <= 1e-4, name);
        }
        for (let j = 0; j < 2; j++) {
          const feeds = {
            ...step(G("x_reuse"), tReuse[j]),
            cached_attn: computed.attn,
            cached_cross: computed.cross,
            cached_mlp: computed.mlp,
          };
          const on = await blocks.run({ ...feeds, reuse: flags(1), reuse_cross: flags(1) });
          const off = await blocks.run({ ...feeds, reuse: flags(1), reuse_cross: flags(0) });
          const viaResidual = await reuse.run({
            ...step(G("x_reuse"), tReuse[j]),
            residual: f32(G("residual.0").shape, residuals.slice(j * n, (j + 1) * n)),
          });
          const features = new Float32Array(2 * computed.attn.data.length);
          features.set(computed.attn.data as Float32Array, 0);
          features.set(computed.mlp.data as Float32Array, computed.attn.data.length);
          const viaXr = await reuseXr.run({ ...step(G("x_reuse"), tReuse[j]), features: f32([2, ...computed.attn.shape], features) });
          const e1 = relError(viaResidual.model_out.data as Float32Array, on.model_out.data as Float32Array);
          const e2 = relError(viaXr.model_out.data as Float32Array, off.model_out.data as Float32Array);
          assert.ok(e1 <= 1e-5, `R_j route vs literal cache, cross cached: ${e1}`);
          assert.ok(e2 <= 1e-5, `reuse_xr vs literal cache, cross recomputed: ${e2}`);
          assert.ok(relError(on.model_out.data as Float32Array, off.model_out.data as Float32Array) > 1e-4, "the two cross modes differ");
        }
        await blocks.release();
        await reuse.release();
        await reuseXr.release();
      });
    } finally {
      await bundle.cleanup();
    }
  });
}

Deno.test("PixArt FORA: the residual route equals the literal per-layer cache over whole runs, cross-attention cached and recomputed", async (t) => {
  const { cfg, weights } = await fixtureConfig("diffusers");
  const golden: Golden = await readGolden(join(FIX, "golden-pixart.safetensors"));
  const bundle = await tempBundle(weights);
  const STEPS = 12;
  try {
    const files = new Map<string, string>();
    for (const guided of [true]) {
      const graphs = buildPixartGraphs(bundle.src, cfg, { computeType: "float32", cfg: guided });
      for (const [kind, graph] of Object.entries(graphs)) {
        const name = `${kind}-${guided ? "cfg" : "plain"}.onnx`;
        await writeModel(join(bundle.dir, name), graph);
        files.set(name, join(bundle.dir, name));
      }
    }
    const model = await openPixartStepModel(cfg, (kind, guided) => files.get(`${kind}-${guided ? "cfg" : "plain"}.onnx`)!, {
      cfgScale: 4.5,
      cfgChannels: "all",
    }, { threads: 1 });
    const captions = {
      cond: golden.get("caption_cond")!.data,
      condTokens: golden.get("caption_cond")!.shape[1],
      uncond: golden.get("caption_uncond")!.data,
      uncondTokens: golden.get("caption_uncond")!.shape[1],
    };
    const shape = { batch: 2, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
    const run = async (sampler: string, interval: number, route: "residual" | "literal", cacheCross: boolean) => {
      const step = await model.bind(2, captions, { cacheCross });
      const s = makeSampler(sampler, STEPS);
      const policy = staticPolicy(STEPS, interval), planned = staticKinds(STEPS, interval);
      const kinds: string[] = [];
      const onStep = (r: { kind: string }) => kinds.push(r.kind);
      const denoiser = route === "residual"
        ? residualDenoiser(step, policy, s.plan.modelTimes, onStep)
        : literalDenoiser(step, planned, onStep);
      const noise = sampleRngs(7, 2);
      const xT = batchNormals(noise, cfg.inChannels * cfg.inputSize ** 2);
      const x0 = await s.sample(denoiser, xT, shape, noise);
      assert.deepEqual(kinds, planned);
      assert.ok(x0.every(Number.isFinite));
      return x0;
    };
    try {
      for (const sampler of ["dpm-solver++", "iddpm"]) {
        await t.step(`${sampler}: N=1 residual route == per-block path (1e-6)`, async () => {
          assert.ok(relError(await run(sampler, 1, "residual", true), await run(sampler, 1, "literal", true)) <= 1e-6);
        });
        for (const cacheCross of [true, false]) {
          await t.step(
            `${sampler}: N=2, 3 with cross-attention ${cacheCross ? "cached" : "recomputed"}: residual route == literal cache (1e-5)`,
            async () => {
              const uncached = await run(sampler, 1, "residual", cacheCross);
              for (const interval of [2, 3]) {
                const a = await run(sampler, interval, "residual", cacheCross);
                const b = await run(sampler, interval, "literal", cacheCross);
                const err = relError(a, b);
                assert.ok(err <= 1e-5, `N=${interval}: ${err}`);
                assert.ok(relError(a, uncached) > 1e-4, "caching changes the result");
              }
            },
          );
        }
        await t.step(`${sampler}: caching cross-attention or recomputing it gives different runs`, async () => {
          assert.ok(relError(await run(sampler, 3, "residual", true), await run(sampler, 3, "residual", false)) > 1e-6);
        });
      }
    } finally {
      await model.release();
    }
  } finally {
    await bundle.cleanup();
  }
});

Deno.test("fp16 PixArt graphs with fused attention agree with fp32 within 1e-2 relative; the fp16 text graph too", async () => {
  const { cfg, weights } = await fixtureConfig("diffusers");
  const golden: Golden = await readGolden(join(FIX, "golden-pixart.safetensors"));
  const G = (n: string) => golden.get(n)!;
  const bundle = await tempBundle(weights);
  try {
    const graphs = buildPixartGraphs(bundle.src, cfg, { computeType: "float16", cfg: true, attention: "fused" });
    const text = await sessionFor(bundle.dir, "text16.onnx", graphs.text);
    const cond = await text.run({ caption: f32(G("caption_cond").shape, G("caption_cond").data) });
    const uncond = await text.run({ caption: f32(G("caption_uncond").shape, G("caption_uncond").data) });
    assert.ok(relError(cond.text_k.data as Float32Array, stack(golden, "text_k", cfg.depth).data as Float32Array) <= 1e-2);
    const full = await sessionFor(bundle.dir, "full16.onnx", graphs.full);
    const out = await full.run({
      latent: f32(G("x").shape, G("x").data),
      timestep: f32([1], G("t").data),
      cond_k: cond.text_k,
      cond_v: cond.text_v,
      uncond_k: uncond.text_k,
      uncond_v: uncond.text_v,
      guidance_scale: f32([1], G("cfg_scale").data),
      guidance_mask: f32([2 * cfg.inChannels], guidanceMask(cfg, "all")),
      reuse_timesteps: f32([2], G("t_reuse").data),
    });
    const err = relError(out.model_out.data as Float32Array, G("out_all").data);
    assert.ok(err <= 1e-2, `fp16 full step: ${err}`);
    await text.release();
    await full.release();
  } finally {
    await bundle.cleanup();
  }
});
