/**
 * PixArt-alpha on the CPU EP at real shapes with random weights (speed does not depend on
 * weight values): one full step vs one FORA reuse step, with cross-attention cached and
 * recomputed; the text graph (caption keys and values, once per prompt); the T5-XXL encoder,
 * measured on `--t5-layers` layers at full width and scaled to its 24 layers; the SD VAE
 * decoder at the model's resolution. From these, the whole-run speed-up at N=2 for IDDPM-100
 * and DPM-Solver++-20 including text encoding (prompt and the empty prompt) and VAE decoding,
 * next to the paper's 1.86x and 1.54x. One sample with classifier-free guidance (batch 2
 * inside the graphs), fp32. Prints a markdown table for bench/RESULTS.md.
 *
 *   deno run -A bench/pixart_step_cpu.ts [--preset XL/2-512] [--tokens 120] [--full-runs 1] [--reuse-runs 5] [--t5-layers 1] [--no-vae]
 *
 * XL/2-512 writes about 2.4 GB (transformer) + 1.3 GB (one T5-XXL layer and its embedding) +
 * 0.2 GB (VAE) of random fp32 weights to the temp folder and takes several minutes on 2 cores.
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import os from "node:os";
import { writeModel } from "../lib/onnx/serialize.ts";
import type { WeightSource } from "../lib/weights/source.ts";
import { f32, type HostTensor, openSession, type Session } from "../lib/runtime/session.ts";
import { buildPixartGraphs } from "../lib/models/pixart/graphs.ts";
import { guidanceMask } from "../kernels/guidance.ts";
import { pixartPreset } from "../lib/models/pixart/config.ts";
import { numTokens, outChannels } from "../lib/models/patch_grid.ts";
import { buildT5EncoderGraph } from "../lib/models/t5/graph.ts";
import { T5_V1_1_XXL } from "../lib/models/t5/config.ts";
import { buildVaeDecoderGraph } from "../lib/models/vae/graph.ts";
import { vaePreset } from "../lib/models/vae/config.ts";
import { plannedKinds, staticPolicy } from "../lib/fora/policy.ts";
import { randomWeights } from "./random_weights.ts";

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "XL/2-512" },
    tokens: { type: "string", default: "120" },
    "full-runs": { type: "string", default: "1" },
    "reuse-runs": { type: "string", default: "5" },
    "t5-layers": { type: "string", default: "1" },
    "no-vae": { type: "boolean", default: false },
  },
});
const cfg = pixartPreset(args.preset!);
const T = numTokens(cfg), D = cfg.hiddenSize, L = cfg.depth, S = cfg.inputSize, C = cfg.inChannels;
const nTok = Number(args.tokens), fullRuns = Number(args["full-runs"]), reuseRuns = Number(args["reuse-runs"]);
const t5Layers = Number(args["t5-layers"]);
const dir = await Deno.makeTempDir({ prefix: "fora-pixart-bench-" });
const rows: string[] = [];
const ms: Record<string, number> = {};
try {
  // ---- transformer
  console.error(`writing random PixArt-${args.preset} weights to ${dir} ...`);
  const pixSrc = await randomWeights(join(dir, "pixart"), (src) => buildPixartGraphs(src, cfg, { computeType: "float32", cfg: true }));
  const graphs = buildPixartGraphs(pixSrc, cfg, { computeType: "float32", cfg: true });
  for (const kind of ["text", "full", "reuse", "full_xr", "reuse_xr"] as const) await writeModel(join(dir, `${kind}.onnx`), graphs[kind]);
  const text = await openSession(join(dir, "text.onnx"));
  const caption = f32([1, nTok, cfg.captionChannels], wave(nTok * cfg.captionChannels, 0.3));
  ms.text = await time(text, { caption }, 3);
  const kv = await text.run({ caption });
  const empty = await text.run({ caption: f32([1, 1, cfg.captionChannels], wave(cfg.captionChannels, 0.3)) });
  await text.release();
  const common: Record<string, HostTensor> = {
    latent: f32([1, C, S, S], wave(C * S * S, 1)),
    timestep: f32([1], [500]),
    cond_k: kv.text_k,
    cond_v: kv.text_v,
    uncond_k: empty.text_k,
    uncond_v: empty.text_v,
    guidance_scale: f32([1], [4.5]),
    guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, "all")),
  };
  {
    const full = await openSession(join(dir, "full.onnx"));
    await full.run({ ...common, reuse_timesteps: f32([1], [475]) }); // warm-up
    ms.full0 = await time(full, { ...common, reuse_timesteps: f32([0], []) }, fullRuns, false);
    ms.full = await time(full, { ...common, reuse_timesteps: f32([1], [475]) }, fullRuns, false);
    await full.release();
    const reuse = await openSession(join(dir, "reuse.onnx"));
    ms.reuse = await time(reuse, { ...common, residual: f32([2, T, D]) }, reuseRuns);
    await reuse.release();
  }
  {
    const full = await openSession(join(dir, "full_xr.onnx"));
    ms.fullXr = await time(full, common, fullRuns);
    await full.release();
    const reuse = await openSession(join(dir, "reuse_xr.onnx"));
    ms.reuseXr = await time(reuse, { ...common, features: f32([2, L, 2, T, D]) }, Math.max(1, Math.ceil(reuseRuns / 2)));
    await reuse.release();
  }
  await Deno.remove(join(dir, "pixart"), { recursive: true });

  // ---- T5-XXL, t5Layers layers at full width, scaled to 24
  console.error(`writing ${t5Layers} random T5-XXL layer(s) ...`);
  const t5cfg = { ...T5_V1_1_XXL, numLayers: t5Layers };
  const t5Src = await randomWeights(join(dir, "t5"), (src) => buildT5EncoderGraph(src, t5cfg, "float32"), {
    has: () => true,
    hints: { "shared.weight": [t5cfg.vocabSize, t5cfg.dModel] },
  });
  await writeModel(join(dir, "t5.onnx"), buildT5EncoderGraph(t5Src, t5cfg, "float32"));
  const t5 = await openSession(join(dir, "t5.onnx"));
  const ids = (n: number): HostTensor => ({
    dtype: "int64",
    shape: [1, n],
    data: BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 37) % 32000 + 1)),
  });
  const t5Prompt = await time(t5, { input_ids: ids(nTok) }, 2);
  const t5Empty = await time(t5, { input_ids: ids(1) }, 2);
  await t5.release();
  await Deno.remove(join(dir, "t5"), { recursive: true });
  const scale = T5_V1_1_XXL.numLayers / t5Layers;
  ms.t5 = (t5Prompt + t5Empty) * scale;

  // ---- VAE decoder
  if (!args["no-vae"]) {
    console.error("writing random SD VAE decoder weights ...");
    const vcfg = vaePreset("sd-vae-ft-mse");
    const shortcuts = new Set(["decoder.up_blocks.2.resnets.0.conv_shortcut.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"]);
    const vaeHas = (name: string) => name.endsWith(".to_q.weight") || /\.to_(q|k|v|out\.0)\.bias$/.test(name) || shortcuts.has(name);
    const build = (src: WeightSource) => buildVaeDecoderGraph(src, vcfg, "float32", { height: S, width: S });
    // the mid-block attention's projections are asked for without a shape: 512 x 512 in the SD VAE
    const vaeSrc = await randomWeights(join(dir, "vae"), build, { has: vaeHas, fallback: [512, 512] });
    await writeModel(join(dir, "vae.onnx"), build(vaeSrc));
    const vae = await openSession(join(dir, "vae.onnx"));
    ms.vae = await time(vae, { latent: f32([1, C, S, S], wave(C * S * S, 1)) }, 1);
    await vae.release();
  } else ms.vae = 0;

  // ---- report
  const line = (what: string, graph: string, v: number) => rows.push(`| ${what} | ${graph} | ${v.toFixed(v < 100 ? 2 : 1)} |`);
  const tag = `PixArt-${args.preset} fp32, B=1 + CFG (batch 2), caption ${nTok} tokens`;
  line(tag, "text graph (caption K/V, once per prompt)", ms.text);
  line(tag, "full step, no residuals (N=1)", ms.full0);
  line(tag, "full step + 1 residual, cross-attn cached (N=2)", ms.full);
  line(tag, "reuse step, cross-attn cached", ms.reuse);
  line(tag, "full step, emits A_k/M_k (cross-attn recomputed)", ms.fullXr);
  line(tag, "reuse step, cross-attn recomputed", ms.reuseXr);
  line(`T5-XXL encoder, ${t5Layers} of 24 layers measured, scaled x${scale}`, `prompt (${nTok} tokens) + empty prompt`, ms.t5);
  if (!args["no-vae"]) line("SD VAE decoder", `latent ${S}x${S} -> ${8 * S}x${8 * S}`, ms.vae);
  console.log("| model | graph | median ms |");
  console.log("|---|---|---|");
  for (const r of rows) console.log(r);
  console.log(
    `\nreuse / full: cross-attn cached ${(100 * ms.reuse / ms.full).toFixed(2)}%, recomputed ${(100 * ms.reuseXr / ms.fullXr).toFixed(2)}%`,
  );
  console.log(
    "\n| sampler | N | full / reuse steps | uncached s | FORA s (cross cached) | speed-up | FORA s (cross recomputed) | speed-up | paper |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const [name, steps, paper] of [["IDDPM", 100, "1.86x"], ["DPM-Solver++", 20, "1.54x"]] as const) {
    const kinds = plannedKinds(staticPolicy(steps, 2));
    const nf = kinds.filter((k) => k === "full").length, nr = steps - nf;
    const fixed = ms.t5 + ms.text * 2 + ms.vae;
    const base = fixed + steps * ms.full0;
    const on = fixed + nf * ms.full + nr * ms.reuse;
    const off = fixed + nf * ms.fullXr + nr * ms.reuseXr;
    console.log(
      `| ${name} | 2 | ${nf} / ${nr} | ${(base / 1e3).toFixed(1)} | ${(on / 1e3).toFixed(1)} | ${(base / on).toFixed(2)}x | ${
        (off / 1e3).toFixed(1)
      } | ${(base / off).toFixed(2)}x | ${paper} |`,
    );
  }
  console.log(
    `\nmachine: ${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.cpus().length} cores, ${
      (os.totalmem() / 2 ** 30).toFixed(0)
    } GiB; onnxruntime-node CPU EP`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}

/** Median wall time of `runs` runs, after one warm-up run unless told otherwise (each time also to stderr). */
async function time(s: Session, feeds: Record<string, HostTensor>, runs: number, warm = true): Promise<number> {
  if (warm) await s.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  console.error(`  ${basename(s.path)}: ${t.map((v) => v.toFixed(1)).join(", ")} ms`);
  return t[Math.floor(t.length / 2)];
}

function wave(n: number, amp: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin(i * 0.7));
}
