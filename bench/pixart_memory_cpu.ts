/**
 * Peak resident memory of PixArt sampling on the CPU EP at real shapes with random weights
 * (memory does not depend on weight values), with the sessions open as the PixArt generator
 * holds them: the transformer's text, full and reuse graphs and the VAE decoder from the start,
 * the T5 encoder from the first prompt. Each measurement runs in a child process (writing the
 * weights does not count), which reads VmRSS and VmHWM from /proc/self/status after each phase:
 *
 * - encoding: transformer and VAE sessions open, then T5 opened and run on the prompt and "".
 * - sampling: transformer and VAE sessions open, the text graph, one full step (emitting R_j),
 *   one reuse step, one VAE decode.
 *
 * To keep the run short on a shared machine, T5 may be measured on --t5-layers of its 24 layers
 * (its resident size is then scaled by layer count) and the full step run on models of
 * --run-depth and half that many blocks at the real token count and width (its working memory,
 * which grows with depth through the A_k, X_k, M_k kept for R_j, extrapolated linearly to the
 * real depth; the run model's own weights are subtracted). Sessions run without ONNX Runtime's
 * CPU arena, as the PixArt step model opens them (--arena: with it; the arena then keeps each
 * block's attention scores, about 2 GiB a block at 1024 px). Beside the measurement: fora's
 * estimate (lib/models/pixart/memory.ts).
 *
 *   deno run -A bench/pixart_memory_cpu.ts [--preset XL/2-1024-MS] [--t5-layers 24] [--weights F32]
 *     [--run-depth 28] [--tokens 120] [--no-vae] [--arena]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import os from "node:os";
import { writeModel } from "../lib/onnx/serialize.ts";
import type { GraphData } from "../lib/onnx/builder.ts";
import type { WeightSource } from "../lib/weights/source.ts";
import { loadCheckpoint } from "../lib/weights/checkpoint.ts";
import { f32, type HostTensor, openSession, type Session } from "../lib/runtime/session.ts";
import { buildPixartGraphs } from "../lib/models/pixart/graphs.ts";
import { guidanceMask } from "../kernels/guidance.ts";
import { type PixartConfig, pixartPreset } from "../lib/models/pixart/config.ts";
import { numTokens, outChannels } from "../lib/models/patch_grid.ts";
import { buildT5EncoderGraph } from "../lib/models/t5/graph.ts";
import { T5_V1_1_XXL, t5Parameters } from "../lib/models/t5/config.ts";
import { buildVaeDecoderGraph } from "../lib/models/vae/graph.ts";
import { upscaleFactor, vaePreset } from "../lib/models/vae/config.ts";
import { estimatePixartMemory, formatGiB, type WeightsSummary } from "../lib/models/pixart/memory.ts";
import { randomWeights } from "./random_weights.ts";

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "XL/2-1024-MS" },
    "t5-layers": { type: "string", default: "24" },
    weights: { type: "string", default: "F32" },
    "run-depth": { type: "string" },
    tokens: { type: "string", default: "120" },
    "no-vae": { type: "boolean", default: false },
    arena: { type: "boolean", default: false },
    child: { type: "string" },
    phase: { type: "string" },
    depth: { type: "string" },
  },
});
const fileDtype = args.weights as "F16" | "F32";
const cfg = pixartPreset(args.preset!);
const t5cfg = { ...T5_V1_1_XXL, numLayers: Number(args["t5-layers"]) };
const runDepth = Number(args["run-depth"] ?? cfg.depth), nTok = Number(args.tokens);
const vcfg = vaePreset("sd-vae-ft-mse");
const S = cfg.inputSize, C = cfg.inChannels;
const GiB = 2 ** 30;

if (args.child) await measure(args.child, args.phase!, Number(args.depth));
else await main();

interface Snapshot {
  rss: number;
  hwm: number;
}
type Phases = Record<string, Snapshot>;

async function main() {
  const dir = await Deno.makeTempDir({ prefix: "fora-pixart-mem-" });
  try {
    console.error(`writing random ${fileDtype} weights (T5 ${t5cfg.numLayers} layers, PixArt-${args.preset}, VAE) to ${dir} ...`);
    const t5 = await randomWeights(join(dir, "t5"), (src) => buildT5EncoderGraph(src, t5cfg, "float32"), {
      has: () => true,
      hints: { "shared.weight": [t5cfg.vocabSize, t5cfg.dModel] },
      dtype: fileDtype,
    });
    await writeModel(join(dir, "t5.onnx"), buildT5EncoderGraph(t5, t5cfg, "float32"));
    const pix = await randomWeights(join(dir, "pixart"), (src) => graphs(src, cfg), { dtype: fileDtype });
    const full = graphs(pix, cfg);
    for (const kind of ["text", "full", "reuse"] as const) await writeModel(join(dir, `${kind}.onnx`), full[kind]);
    const depths = runDepth < cfg.depth ? [Math.max(1, Math.floor(runDepth / 2)), runDepth] : [cfg.depth];
    for (const d of depths) if (d < cfg.depth) await writeModel(join(dir, `full-${d}.onnx`), graphs(pix, { ...cfg, depth: d }).full);
    if (!args["no-vae"]) {
      const shortcuts = new Set([
        "decoder.up_blocks.2.resnets.0.conv_shortcut.weight",
        "decoder.up_blocks.3.resnets.0.conv_shortcut.weight",
      ]);
      const has = (name: string) => name.endsWith(".to_q.weight") || /\.to_(q|k|v|out\.0)\.bias$/.test(name) || shortcuts.has(name);
      const build = (src: WeightSource) => buildVaeDecoderGraph(src, vcfg, "float32", { height: S, width: S });
      const vae = await randomWeights(join(dir, "vae"), build, { has, fallback: [512, 512], dtype: fileDtype });
      await writeModel(join(dir, "vae.onnx"), build(vae));
    }
    const child = async (phase: string, depth: number): Promise<Phases> => {
      console.error(`measuring ${phase}${phase === "sampling" ? ` (full step at depth ${depth})` : ""} ...`);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, ...Deno.args, "--child", dir, "--phase", phase, "--depth", String(depth)],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!out.success) throw new Error(`measuring ${phase} failed`);
      return JSON.parse(new TextDecoder().decode(out.stdout));
    };
    const encoding = await child("encoding", cfg.depth);
    const sampling: Phases[] = [];
    for (const d of depths) sampling.push(await child("sampling", d));
    report(depths, encoding, sampling, {
      t5: await summary(join(dir, "t5")),
      pixart: await summary(join(dir, "pixart")),
      vae: args["no-vae"] ? null : await summary(join(dir, "vae")),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function graphs(src: WeightSource, c: PixartConfig): Record<"text" | "full" | "reuse", GraphData> {
  const g = buildPixartGraphs(src, c, { computeType: "float32", cfg: true, vaeScaleFactor: upscaleFactor(vcfg) });
  return { text: g.text, full: g.full, reuse: g.reuse };
}

async function summary(folder: string): Promise<WeightsSummary> {
  const ckpt = await loadCheckpoint(join(folder, "model.safetensors.index.json"));
  let parameters = 0;
  for (const t of ckpt.tensors.values()) parameters += t.shape.reduce((a, b) => a * b, 1);
  return { parameters, dtypes: [fileDtype] };
}

function snapshot(): Snapshot {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

async function measure(dir: string, phase: string, depth: number) {
  const phases: Phases = { start: snapshot() };
  const wave = (n: number, amp: number) => Float32Array.from({ length: n }, (_, i) => amp * Math.sin(i * 0.7));
  const open: Session[] = [];
  const session = async (name: string) => {
    const s = await openSession(join(dir, name), { cpuArena: args.arena });
    open.push(s);
    return s;
  };
  const text = await session("text.onnx");
  const full = await session("full.onnx");
  const reuse = await session("reuse.onnx");
  const vae = args["no-vae"] ? null : await session("vae.onnx");
  phases.sessionsLoaded = snapshot();
  if (phase === "encoding") {
    const ids = (n: number): HostTensor => ({
      dtype: "int64",
      shape: [1, n],
      data: BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 37) % 32000 + 1)),
    });
    const t5 = await openSession(join(dir, "t5.onnx"), { cpuArena: args.arena });
    phases.t5Loaded = snapshot();
    await t5.run({ input_ids: ids(nTok) });
    await t5.run({ input_ids: ids(1) });
    phases.t5Run = snapshot();
    await t5.release();
  } else {
    const cond = await text.run({ caption: f32([1, nTok, cfg.captionChannels], wave(nTok * cfg.captionChannels, 0.3)) });
    const uncond = await text.run({ caption: f32([1, 1, cfg.captionChannels], wave(cfg.captionChannels, 0.3)) });
    const feeds = (d: number): Record<string, HostTensor> => ({
      latent: f32([1, C, S, S], wave(C * S * S, 1)),
      timestep: f32([1], [500]),
      cond_k: layers(cond.text_k, d),
      cond_v: layers(cond.text_v, d),
      uncond_k: layers(uncond.text_k, d),
      uncond_v: layers(uncond.text_v, d),
      guidance_scale: f32([1], [4.5]),
      guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, "all")),
    });
    phases.textRun = snapshot();
    const step = depth === cfg.depth ? full : await openSession(join(dir, `full-${depth}.onnx`), { cpuArena: args.arena });
    phases.stepLoaded = snapshot();
    await step.run({ ...feeds(depth), reuse_timesteps: f32([1], [475]) });
    phases.fullStep = snapshot();
    if (step !== full) await step.release();
    await reuse.run({ ...feeds(cfg.depth), residual: f32([2, numTokens(cfg), cfg.hiddenSize]) });
    phases.reuseStep = snapshot();
    if (vae && depth === runDepth) {
      await vae.run({ latent: f32([1, C, S, S], wave(C * S * S, 1)) });
      phases.vaeDecode = snapshot();
    }
  }
  for (const s of open) await s.release();
  console.log(JSON.stringify(phases));
}

/** The first `depth` layers of a stacked [L, ...] tensor. */
function layers(t: HostTensor, depth: number): HostTensor {
  const per = t.data.length / t.shape[0];
  return f32([depth, ...t.shape.slice(1)], (t.data as Float32Array).slice(0, depth * per));
}

function report(
  depths: number[],
  enc: Phases,
  runs: Phases[],
  w: { t5: WeightsSummary; pixart: WeightsSummary; vae: WeightsSummary | null },
) {
  const g = (b: number) => (b / GiB).toFixed(2);
  console.log("| child | phase | VmRSS GiB | VmHWM GiB |\n|---|---|---|---|");
  for (const [k, s] of Object.entries(enc)) console.log(`| encoding | ${k} | ${g(s.rss)} | ${g(s.hwm)} |`);
  runs.forEach((r, i) => {
    for (const [k, s] of Object.entries(r)) console.log(`| sampling, depth ${depths[i]} | ${k} | ${g(s.rss)} | ${g(s.hwm)} |`);
  });
  // encoding: T5's resident size scaled from the measured layers to all 24 (the token table is
  // mapped from the file and only the rows looked up become resident, so it does not scale)
  const layerScale = T5_V1_1_XXL.numLayers / t5cfg.numLayers;
  const t5Full = t5Parameters(T5_V1_1_XXL) / w.t5.parameters;
  const t5Resident = enc.t5Run.rss - enc.sessionsLoaded.rss;
  const encodingPeak = enc.t5Run.hwm + t5Resident * (layerScale - 1);
  // sampling: the step's working memory above what was resident before it (its own model's weights excluded)
  const work = runs.map((r) => Math.max(r.fullStep.hwm, r.vaeDecode?.hwm ?? 0) - r.stepLoaded.rss);
  const resident = runs[runs.length - 1].textRun.rss;
  let samplingWork = work[work.length - 1], how = `full step measured at depth ${depths[depths.length - 1]}`;
  if (depths.length === 2) {
    const stepWork = runs.map((r) => r.fullStep.hwm - r.stepLoaded.rss);
    const perBlock = (stepWork[1] - stepWork[0]) / (depths[1] - depths[0]);
    samplingWork = Math.max(stepWork[1] + perBlock * (cfg.depth - depths[1]), work[1]);
    how = `full step at depths ${depths.join(" and ")}, ${g(perBlock)} GiB per block, extrapolated to ${cfg.depth}`;
  }
  const samplingPeak = resident + samplingWork;
  const together = encodingPeak + samplingWork;
  const est = estimatePixartMemory({
    transformer: { config: cfg, weights: w.pixart },
    t5: { config: T5_V1_1_XXL, weights: { ...w.t5, parameters: w.t5.parameters * t5Full } },
    vae: w.vae && { config: vcfg, weights: w.vae },
    batch: 1,
    captionTokens: nTok,
  });
  console.log(
    `\nPixArt-${args.preset} + T5-XXL (${t5cfg.numLayers} of 24 layers measured${
      layerScale > 1 ? ", scaled by layers" : ""
    }), ${fileDtype} files, fp32 graphs, ` +
      `batch 1 with CFG (${how}):\n- encoding phase peak ${g(encodingPeak)} GiB, sampling phase peak ${g(samplingPeak)} GiB ` +
      `(working memory ${g(samplingWork)} GiB over ${g(resident)} GiB resident)\n- T5 kept open while sampling: ${g(together)} GiB; ` +
      `closed after each prompt: ${g(Math.max(encodingPeak, samplingPeak))} GiB\n- fora's estimate: ${
        formatGiB(est.together)
      } kept open, ` +
      `${formatGiB(est.phased)} closed (${est.parts.map((p) => `${p.name} ${formatGiB(p.bytes)}`).join(", ")})`,
  );
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.cpus().length} cores, ${
      (os.totalmem() / GiB).toFixed(0)
    } GiB; onnxruntime-node CPU EP`,
  );
}
