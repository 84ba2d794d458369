/**
 * The rest of the PixArt family against float64 PyTorch goldens (tools/reference/pixart.py,
 * fixtures/pixart-family): PixArt-alpha 512 with interpolation_scale 2, 1024-MS with the
 * resolution and aspect-ratio micro-conditions at a non-square latent (both naming schemes),
 * and a Sigma-like model (interpolation_scale 0.5, a 150-token caption, F16 weights). Each
 * fp32 graph within 1e-5 relative: one guided full step, its R_j, the reuse steps with
 * cross-attention cached and recomputed.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { buildPixartGraphs, type PixartGraphOptions } from "../../lib/models/pixart/graphs.ts";
import { guidanceMask } from "../../kernels/guidance.ts";
import {
  type LatentSize,
  parsePixartDiffusersConfig,
  parsePixartOriginalConfig,
  type PixartConfig,
} from "../../lib/models/pixart/config.ts";
import { f32, type HostTensor } from "../../lib/runtime/session.ts";
import { refuseUnsupportedTensors } from "../../lib/models/pixart/weights.ts";
import { FIXTURES, readGolden, relError, sessionFor, tempBundle } from "../support.ts";

const FAMILY = join(FIXTURES, "pixart-family");
const TOL = 1e-5;

type Golden = Map<string, { data: Float32Array; shape: number[] }>;

async function family(name: string, naming: "diffusers" | "original" = "diffusers") {
  const cfgPath = join(FAMILY, name, "transformer", "config.json");
  const cfg: PixartConfig = { ...parsePixartDiffusersConfig(JSON.parse(await Deno.readTextFile(cfgPath)), cfgPath), naming };
  const golden: Golden = await readGolden(join(FAMILY, name, "golden.safetensors"));
  const [, , height, width] = golden.get("x")!.shape;
  return {
    cfg,
    golden,
    latent: { height, width } as LatentSize,
    weights: join(FAMILY, name, naming === "original" ? "original" : "transformer"),
  };
}

/** Runs the text, full and reuse graphs on the golden's inputs; returns each output's relative error. */
async function stepErrors(
  name: string,
  naming: "diffusers" | "original",
  over: Partial<PixartGraphOptions> = {},
  cfgOver: Partial<PixartConfig> = {},
) {
  const f = await family(name, naming);
  const cfg = { ...f.cfg, ...cfgOver };
  const G = (n: string) => f.golden.get(n)!;
  const bundle = await tempBundle(f.weights);
  try {
    const graphs = buildPixartGraphs(bundle.src, cfg, { computeType: "float32", cfg: true, latent: f.latent, ...over });
    const text = await sessionFor(bundle.dir, "text.onnx", graphs.text);
    const cond = await text.run({ caption: f32(G("caption_cond").shape, G("caption_cond").data) });
    const uncond = await text.run({ caption: f32(G("caption_uncond").shape, G("caption_uncond").data) });
    await text.release();
    const feeds = (x: string, t: number): Record<string, HostTensor> => ({
      latent: f32(G(x).shape, G(x).data),
      timestep: f32([1], [t]),
      cond_k: cond.text_k,
      cond_v: cond.text_v,
      uncond_k: uncond.text_k,
      uncond_v: uncond.text_v,
      guidance_scale: f32([1], G("cfg_scale").data),
      guidance_mask: f32([2 * cfg.inChannels], guidanceMask(cfg, "all")),
    });
    const tReuse = G("t_reuse").data, n = G("residual.0").data.length;
    const errors: Record<string, number> = {};
    const full = await sessionFor(bundle.dir, "full.onnx", graphs.full);
    const out = await full.run({ ...feeds("x", G("t").data[0]), reuse_timesteps: f32([2], tReuse) });
    await full.release();
    errors.full = relError(out.model_out.data as Float32Array, G("out_all").data);
    const residuals = out.residuals.data as Float32Array;
    const reuse = await sessionFor(bundle.dir, "reuse.onnx", graphs.reuse);
    const fullXr = await sessionFor(bundle.dir, "full_xr.onnx", graphs["full_xr"]);
    const features = (await fullXr.run(feeds("x", G("t").data[0]))).features;
    await fullXr.release();
    const reuseXr = await sessionFor(bundle.dir, "reuse_xr.onnx", graphs["reuse_xr"]);
    for (let j = 0; j < 2; j++) {
      const r = residuals.subarray(j * n, (j + 1) * n);
      errors[`residual.${j}`] = relError(r, G(`residual.${j}`).data);
      const o = await reuse.run({ ...feeds("x_reuse", tReuse[j]), residual: f32(G("residual.0").shape, r.slice()) });
      errors[`reuse.${j}`] = relError(o.model_out.data as Float32Array, G(`reuse_out.${j}`).data);
      const ox = await reuseXr.run({ ...feeds("x_reuse", tReuse[j]), features });
      errors[`reuse_xr.${j}`] = relError(ox.model_out.data as Float32Array, G(`reuse_xr_out.${j}`).data);
    }
    await reuse.release();
    await reuseXr.release();
    return errors;
  } finally {
    await bundle.cleanup();
  }
}

function assertAllWithin(errors: Record<string, number>, tol: number) {
  for (const [k, e] of Object.entries(errors)) assert.ok(e <= tol, `${k}: relative error ${e} > ${tol}`);
}

for (
  const [name, naming, what] of [
    ["alpha-512", "diffusers", "interpolation_scale 2"],
    ["alpha-1024-ms", "diffusers", "micro-conditions at a 6x10 latent, interpolation_scale 2"],
    ["alpha-1024-ms", "original", "micro-conditions from csize_embedder / ar_embedder, 6x10 latent"],
    ["sigma", "diffusers", "interpolation_scale 0.5, 150-token caption, F16 weights"],
  ] as const
) {
  Deno.test(`PixArt ${name} (${naming} names; ${what}): full step, R_j and reuse steps match the float64 reference within ${TOL}`, async () => {
    assertAllWithin(await stepErrors(name, naming), TOL);
  });
}

Deno.test("the position table's scaling and the micro-conditions are what the goldens depend on", async () => {
  const unscaled = await stepErrors("alpha-512", "diffusers", {}, { interpolationScale: 1 });
  assert.ok(unscaled.full > 1e-3, `interpolation_scale 1 instead of 2 should miss the golden (${unscaled.full})`);
  const wrongPixels = await stepErrors("alpha-1024-ms", "diffusers", { vaeScaleFactor: 16 });
  assert.ok(wrongPixels.full > 1e-3, `micro-conditions at twice the pixel size should miss the golden (${wrongPixels.full})`);
});

Deno.test("fp16 graphs read the Sigma model's F16 weights as they are (no Cast) and agree with the golden within 1e-2", async () => {
  const f = await family("sigma");
  const bundle = await tempBundle(f.weights);
  try {
    const g16 = buildPixartGraphs(bundle.src, f.cfg, { computeType: "float16", cfg: true, latent: f.latent, attention: "fused" });
    const g32 = buildPixartGraphs(bundle.src, f.cfg, { computeType: "float32", cfg: true, latent: f.latent });
    const casts = (g: typeof g16.full) => g.nodes.filter((n) => n.opType === "Cast" && n.inputs[0].startsWith("w:")).length;
    assert.equal(casts(g16.full), 0, "fp16 graph over F16 weights");
    assert.ok(casts(g32.full) > 0, "the fp32 graph casts F16 weights (folded by ONNX Runtime at load)");
    const G = (n: string) => f.golden.get(n)!;
    const text = await sessionFor(bundle.dir, "text16.onnx", g16.text);
    const cond = await text.run({ caption: f32(G("caption_cond").shape, G("caption_cond").data) });
    const uncond = await text.run({ caption: f32(G("caption_uncond").shape, G("caption_uncond").data) });
    await text.release();
    const full = await sessionFor(bundle.dir, "full16.onnx", g16.full);
    const out = await full.run({
      latent: f32(G("x").shape, G("x").data),
      timestep: f32([1], G("t").data),
      cond_k: cond.text_k,
      cond_v: cond.text_v,
      uncond_k: uncond.text_k,
      uncond_v: uncond.text_v,
      guidance_scale: f32([1], G("cfg_scale").data),
      guidance_mask: f32([2 * f.cfg.inChannels], guidanceMask(f.cfg, "all")),
      reuse_timesteps: f32([2], G("t_reuse").data),
    });
    await full.release();
    const err = relError(out.model_out.data as Float32Array, G("out_all").data);
    assert.ok(err <= 1e-2, `fp16 full step: ${err}`);
  } finally {
    await bundle.cleanup();
  }
});

Deno.test("transformer configs: diffusers' defaults for interpolation_scale and micro-conditions; bad values and Sigma-only parts refused", () => {
  const base = {
    norm_type: "ada_norm_single",
    num_attention_heads: 16,
    attention_head_dim: 72,
    in_channels: 4,
    out_channels: 8,
    num_layers: 28,
    patch_size: 2,
    caption_channels: 4096,
  };
  const parse = (o: Record<string, unknown>) => parsePixartDiffusersConfig({ ...base, ...o }, "config.json");
  const ms = parse({ sample_size: 128, interpolation_scale: null, use_additional_conditions: null });
  assert.deepEqual([ms.interpolationScale, ms.microConditions], [2, true]);
  const sigma = parse({ sample_size: 128, interpolation_scale: 2, use_additional_conditions: false });
  assert.deepEqual([sigma.interpolationScale, sigma.microConditions], [2, false]);
  assert.equal(parse({ sample_size: 32, interpolation_scale: 0.5 }).interpolationScale, 0.5);
  assert.deepEqual([parse({ sample_size: 64 }).interpolationScale, parse({ sample_size: 64 }).microConditions], [1, false]);
  assert.throws(() => parse({ sample_size: 64, interpolation_scale: 0 }), /"interpolation_scale" must be a positive number, found 0/);
  assert.throws(() => parse({ sample_size: 64, use_additional_conditions: "yes" }), /"use_additional_conditions" must be true or false/);
  assert.throws(
    () => parse({ sample_size: 128, num_attention_heads: 4, attention_head_dim: 8 }),
    /micro-conditions need a hidden size divisible by 3/,
  );
  assert.throws(() => parse({ sample_size: 256, kv_compress: true }), /"kv_compress" asks for key\/value token compression/);
});

Deno.test("original-layout configs: interpolation_scale and micro_condition, defaulting to 1 and off", () => {
  const base = {
    architecture: "pixart",
    depth: 2,
    hidden_size: 48,
    num_heads: 4,
    patch_size: 2,
    input_size: 8,
    in_channels: 4,
    caption_channels: 32,
  };
  const plain = parsePixartOriginalConfig(base, "config.json");
  assert.deepEqual([plain.interpolationScale, plain.microConditions, plain.maxTokens], [1, false, 120]);
  const ms = parsePixartOriginalConfig({ ...base, interpolation_scale: 2, micro_condition: true, max_tokens: 300 }, "config.json");
  assert.deepEqual([ms.interpolationScale, ms.microConditions, ms.maxTokens], [2, true, 300]);
  assert.throws(() => parsePixartOriginalConfig({ ...base, qk_norm: true }, "config.json"), /"qk_norm" asks for query\/key normalisation/);
});

Deno.test("weights of key/value token compression or query/key norms are refused, naming the tensor", () => {
  assert.throws(
    () => refuseUnsupportedTensors(["blocks.0.attn.qkv.weight", "blocks.14.attn.sr.weight"], "transformer"),
    /transformer: tensor "blocks.14.attn.sr.weight" belongs to key\/value token compression/,
  );
  assert.throws(() => refuseUnsupportedTensors(["transformer_blocks.3.attn1.norm_q.weight"], "t"), /query\/key normalisation/);
  refuseUnsupportedTensors(["blocks.0.attn.qkv.weight", "blocks.0.cross_attn.kv_linear.weight", "transformer_blocks.0.norm1.weight"], "t");
});
