/**
 * What changes ONNX Runtime's fp32 GEMM rate (MLAS) on DiT's block shapes (issue 17 item 2):
 * graph forms, weight storage and session settings, each variant its own session, measured
 * side by side in alternating rounds on the same inputs. Random weights at the real size,
 * batch 2 (one sample and its CFG twin), M = 2 x tokens rows per GEMM.
 *
 *   deno task bench:mlas [--presets XL/2-256,S/2-256] [--rounds 2] [--seconds 1]
 *                        [--groups linears,qkv,block] [--config key=value[,key=value]]...
 *
 * Groups, each judged against its own current form (the first row; "vs current" is its
 * median ms over the row's, above 1 is faster):
 * - linears: the six linear layers of one block (q, k, v, attn proj, mlp fc1, fc2), chained
 *   in one graph (q + k + v feeds proj, then fc1, fc2; no activation). Current: fora's
 *   `linear` (MatMul over the transposed [out, in] weight, then Add of the bias) on 3-D
 *   [B, T, D] input, weights as external initializers in a safetensors file (q, k and v as
 *   row ranges of the checkpoint's qkv matrix), as fora's bundles reference them. Variants:
 *   the same on a 2-D [B·T, D] input (Reshape around each layer); Gemm (transB, bias fused)
 *   on 2-D input; weights as in-graph constants; `session.disable_prepacking` = 1 with
 *   either storage; intra-op spinning on; 1 and 2 intra-op threads; each `--config`.
 * - qkv: the Q, K, V projections alone. Current: three MatMul + Add (fora's graphs); variants:
 *   one fused [D, 3D] MatMul + Add then Split, the same as 2-D Gemm then Split, and the fused
 *   MatMul + Add without the Split (the GEMM alone: what a Split costs).
 * - block: a whole DiT block as fora builds it (attention and MLP with adaLN modulation):
 *   the full-step graph of a depth-1 model (buildDitGraphs), with no reuse residuals. Its
 *   embedders and final layer are under 1% of the work; GFLOP/s counts the block's matmuls.
 *   Variants: the session settings of the linears group.
 *
 * Current session settings are openSession's defaults: intra-op threads chosen by ONNX Runtime,
 * no spinning, prepacking on. A session here runs back to back, as the full step of an N=1
 * run does (fora spins only there); FORA's alternating sessions are measured by bench:sampling.
 * Each model file is also run once, profiled, before the rounds: its output is checked against
 * the group's current form (same function, so same output norm) and the table names the GEMM
 * kernels ONNX Runtime ran (after its own fusions).
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import os from "node:os";
import { ditPreset, numTokens, outChannels } from "../lib/models/dit/config.ts";
import { buildDitGraphs } from "../lib/models/dit/graphs.ts";
import { type DitBlockWeights, loadDitWeights } from "../lib/models/dit/weights.ts";
import { guidanceMask } from "../kernels/guidance.ts";
import { type FloatLinearWeights, linear, type LinearTensors } from "../kernels/linear.ts";
import { type ExternalTensor, GraphBuilder, type GraphData, type Value } from "../lib/onnx/builder.ts";
import { writeModel } from "../lib/onnx/serialize.ts";
import { loadCheckpoint } from "../lib/weights/checkpoint.ts";
import { bytesToFloat32 } from "../lib/weights/safetensors.ts";
import { weightSource } from "../lib/weights/source.ts";
import { readTrace } from "../lib/profile/trace.ts";
import { ortRuntime } from "../lib/runtime/machine.ts";
import { f32, type HostTensor, i64, openSession, type SessionOptions } from "../lib/runtime/session.ts";
import { ForaError } from "../lib/errors.ts";
import { writeRandomDit } from "../tools/random_dit.ts";

const GROUPS = ["linears", "qkv", "block"] as const;
type Group = typeof GROUPS[number];

const { values: args } = parseArgs({
  options: {
    presets: { type: "string", default: "XL/2-256,S/2-256" },
    rounds: { type: "string", default: "2" },
    seconds: { type: "string", default: "1" },
    groups: { type: "string", default: GROUPS.join(",") },
    /** Extra session config entries, one variant per flag: "session.dynamic_block_base=4". */
    config: { type: "string", multiple: true, default: [] },
  },
});
const rounds = Number(args.rounds), seconds = Number(args.seconds);
if (!Number.isInteger(rounds) || rounds < 1) throw new ForaError("usage", `--rounds ${args.rounds}: give a whole number of at least 1`);
if (!(seconds > 0)) throw new ForaError("usage", `--seconds ${args.seconds}: give a positive number of seconds per measurement`);
const groups = args.groups!.split(",").map((s) => {
  if (!GROUPS.includes(s as Group)) throw new ForaError("usage", `--groups: unknown group "${s}"; use ${GROUPS.join(", ")}`);
  return s as Group;
});
const configs = args.config!.map(parseConfig);

/** One row of the table: a model file run with session settings on fixed inputs. */
interface Variant {
  preset: string;
  group: Group;
  name: string;
  shape: string;
  model: string;
  options: SessionOptions;
  feeds: Record<string, HostTensor>;
  /** Multiply-adds x 2 of one run. */
  flops: number;
  /** Per-round medians and every run's time, ms. */
  roundMs: number[];
  times: number[];
}

/** GEMM forms of one linear layer y = x W^T + b, x [B, T, K] -> [B, T, N]. */
type Form = "matmul 3-D" | "matmul 2-D" | "gemm 2-D";

/** How a weight enters the graph: referenced in its file (as fora's bundles do) or copied in as a constant. */
type Storage = "external" | "constant";

const SESSION_VARIANTS: [string, SessionOptions][] = [
  ["intra-op spinning on", { spinning: true }],
  ["1 intra-op thread", { threads: 1 }],
  ["2 intra-op threads", { threads: 2 }],
  ["session.disable_prepacking = 1", { config: { "session.disable_prepacking": "1" } }],
  ...configs.map((c): [string, SessionOptions] => [Object.entries(c).map(([k, v]) => `${k} = ${v}`).join(", "), { config: c }]),
];

const started = performance.now(), loadBefore = os.loadavg();
const dir = await Deno.makeTempDir({ prefix: "fora-bench-mlas-" });
try {
  const variants: Variant[] = [];
  for (const preset of args.presets!.split(",")) variants.push(...await presetVariants(preset));
  const checks = await checkModels(variants);
  console.error(`${variants.length} variants x ${rounds} rounds of ${seconds} s ...`);
  for (let r = 0; r < rounds; r++) {
    // Odd rounds run backwards, so that drift over the run does not favour the early rows.
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const times = await timeRuns(v);
      v.roundMs.push(median(times));
      v.times.push(...times);
    }
    console.error(`round ${r + 1}/${rounds} done`);
  }
  report(variants, checks);
} finally {
  await Deno.remove(dir, { recursive: true });
}

// ---- the variants of one preset --------------------------------------------------

async function presetVariants(preset: string): Promise<Variant[]> {
  const cfg = { ...ditPreset(preset), depth: 1 };
  const B = 2, T = numTokens(cfg), D = cfg.hiddenSize, M = B * T;
  const folder = join(dir, preset.replace(/\W/g, "_"));
  console.error(`${preset}: random depth-1 weights and models in ${folder} ...`);
  await writeRandomDit(join(folder, "weights"), cfg);
  const ckpt = await loadCheckpoint(join(folder, "weights"));
  const src = weightSource(ckpt, (f) => `weights/${basename(f)}`);
  const block = loadDitWeights(src, cfg).blocks[0];
  const file = await Deno.readFile(join(folder, "weights", "model.safetensors"));
  const load = (g: GraphBuilder, t: ExternalTensor, storage: Storage): Value =>
    storage === "external" ? g.weight(t) : g.constant(bytesToFloat32(file.slice(t.offset, t.offset + t.length), "F32"), t.shape, "float32");
  const write = async (name: string, graph: GraphData) => {
    const path = join(folder, `${name}.onnx`);
    await writeModel(path, graph);
    return path;
  };
  const x = { x: f32([B, T, D], Float32Array.from({ length: M * D }, (_, i) => Math.cos(i))) };
  const out: Variant[] = [];
  const add = (group: Group, name: string, shape: string, model: string, flops: number, feeds: Record<string, HostTensor>, options = {}) =>
    out.push({ preset, group, name, shape, model, options, feeds, flops, roundMs: [], times: [] });

  if (groups.includes("linears")) {
    const shape = `M ${M}, D ${D}, 6 GEMMs`, flops = 2 * M * 12 * D * D;
    const graph = (form: Form, storage: Storage) =>
      write(`linears ${form} ${storage}`, linearsGraph(block, [B, T, D], form, storage, load));
    const current = await graph("matmul 3-D", "external"), constants = await graph("matmul 3-D", "constant");
    add("linears", "current: MatMul + Add, 3-D, external weights", shape, current, flops, x);
    add("linears", "MatMul + Add, 2-D", shape, await graph("matmul 2-D", "external"), flops, x);
    add("linears", "Gemm (bias fused), 2-D", shape, await graph("gemm 2-D", "external"), flops, x);
    add("linears", "weights as in-graph constants", shape, constants, flops, x);
    add("linears", "in-graph constants, session.disable_prepacking = 1", shape, constants, flops, x, {
      config: { "session.disable_prepacking": "1" },
    });
    for (const [name, options] of SESSION_VARIANTS) add("linears", name, shape, current, flops, x, options);
  }
  if (groups.includes("qkv")) {
    const shape = `${M} × ${D} → 3 × ${D}`, flops = 2 * M * 3 * D * D;
    const qkv: LinearTensors = { weight: src.get("blocks.0.attn.qkv.weight"), bias: src.get("blocks.0.attn.qkv.bias") };
    const graph = (form: QkvForm) => write(`qkv ${form}`, qkvGraph(block, qkv, [B, T, D], form));
    add("qkv", "current: separate Q, K, V (MatMul + Add, 3-D)", shape, await graph("separate"), flops, x);
    add("qkv", "fused QKV MatMul + Add, 3-D, then Split", shape, await graph("fused"), flops, x);
    add("qkv", "fused QKV Gemm, 2-D, then Split", shape, await graph("fused gemm"), flops, x);
    add("qkv", "fused QKV MatMul + Add, no Split (GEMM alone)", shape, await graph("fused unsplit"), flops, x);
  }
  if (groups.includes("block")) {
    // The block's matmuls: its six linears, attention's two T x T products, adaLN's D -> 6D on B rows.
    const shape = `T ${T}, D ${D}, ${cfg.numHeads} heads`, flops = 2 * (M * 12 * D * D + 2 * B * T * T * D + B * 6 * D * D);
    const model = await write("block", buildDitGraphs(src, cfg, { computeType: "float32", cfg: true }).full);
    const S = cfg.inputSize, C = cfg.inChannels;
    const feeds = {
      latent: f32([1, C, S, S], Float32Array.from({ length: C * S * S }, (_, i) => Math.sin(i))),
      timestep: f32([1], [500]),
      class_labels: i64([1], [207]),
      guidance_scale: f32([1], [1.5]),
      guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, "ref")),
      reuse_timesteps: f32([0], []),
    };
    add("block", "current: fora's block graph", shape, model, flops, feeds);
    for (const [name, options] of SESSION_VARIANTS) add("block", name, shape, model, flops, feeds, options);
  }
  return out;
}

type Load = (g: GraphBuilder, t: ExternalTensor, storage: Storage) => Value;

/** y = x W^T + b in `form`; fora's own `linear` is the 3-D MatMul form. */
function linearAs(g: GraphBuilder, x: Value, p: FloatLinearWeights, form: Form): Value {
  if (form === "matmul 3-D") return linear(g, x, p);
  const [b, t, k] = x.shape as number[], n = p.weight.shape[0] as number;
  const x2 = g.reshape(x, [b * t, k]);
  const y2 = form === "matmul 2-D"
    ? linear(g, x2, p)
    : g.node("Gemm", [x2, p.weight, p.bias], [{ dtype: x2.dtype, shape: [b * t, n] }], { transB: 1 })[0];
  return g.reshape(y2, [b, t, n]);
}

/** The block's six linears on x [B, T, D]: proj(q + k + v), then fc1 and fc2. */
function linearsGraph(w: DitBlockWeights, shape: number[], form: Form, storage: Storage, load: Load): GraphData {
  const g = new GraphBuilder("linears", "float32");
  const x = g.input("x", "float32", shape);
  const lin = (v: Value, l: LinearTensors) => linearAs(g, v, { weight: load(g, l.weight, storage), bias: load(g, l.bias, storage) }, form);
  const qkv = g.add(g.add(lin(x, w.q), lin(x, w.k)), lin(x, w.v));
  g.output(lin(lin(lin(qkv, w.proj), w.fc1), w.fc2), "y");
  return g.data();
}

type QkvForm = "separate" | "fused" | "fused gemm" | "fused unsplit";

/** Q, K, V of x [B, T, D] as outputs q, k, v (or one [B, T, 3D] `qkv` when unsplit). */
function qkvGraph(w: DitBlockWeights, fused: LinearTensors, shape: number[], form: QkvForm): GraphData {
  const g = new GraphBuilder("qkv", "float32");
  const x = g.input("x", "float32", shape);
  const weights = (l: LinearTensors) => ({ weight: g.weight(l.weight), bias: g.weight(l.bias) });
  if (form === "separate") {
    for (const [name, l] of [["q", w.q], ["k", w.k], ["v", w.v]] as const) g.output(linear(g, x, weights(l)), name);
    return g.data();
  }
  const y = linearAs(g, x, weights(fused), form === "fused gemm" ? "gemm 2-D" : "matmul 3-D");
  if (form === "fused unsplit") g.output(y, "qkv");
  else g.split(y, -1, [shape[2], shape[2], shape[2]]).forEach((v, i) => g.output(v, ["q", "k", "v"][i]));
  return g.data();
}

// ---- measuring ---------------------------------------------------------------------

async function timeRuns(v: Variant): Promise<number[]> {
  const session = await openSession(v.model, v.options);
  try {
    for (let i = 0; i < 2; i++) await session.run(v.feeds); // first runs allocate and pick kernels
    const times: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end || times.length < 5) {
      const t0 = performance.now();
      await session.run(v.feeds);
      times.push(performance.now() - t0);
    }
    return times;
  } finally {
    await session.release();
  }
}

interface ModelCheck {
  /** GEMM kernels ONNX Runtime ran, with counts. */
  kernels: string;
  /** L2 norm of all outputs together: equal for equal functions, whatever the layout. */
  norm: number;
}

/** Runs each model file once, profiled; fails when a variant does not compute its group's current function. */
async function checkModels(variants: Variant[]): Promise<Map<string, ModelCheck>> {
  const checks = new Map<string, ModelCheck>();
  for (const v of variants) {
    if (checks.has(v.model)) continue;
    const session = await openSession(v.model, { profilePrefix: join(dir, `profile-${checks.size}`) });
    let trace: string | undefined, norm = 0;
    try {
      for (const t of Object.values(await session.run(v.feeds))) for (const value of t.data as Float32Array) norm += value * value;
      trace = session.endProfiling();
    } finally {
      await session.release();
    }
    const counts = new Map<string, number>();
    for (const k of trace ? (await readTrace(trace)).kernels : []) {
      if (/MatMul|Gemm/.test(k.op)) counts.set(k.op, (counts.get(k.op) ?? 0) + 1);
    }
    checks.set(v.model, { kernels: [...counts].map(([op, n]) => `${op} × ${n}`).join(", ") || "none", norm: Math.sqrt(norm) });
  }
  for (const v of variants) {
    const want = checks.get(current(variants, v).model)!.norm, got = checks.get(v.model)!.norm;
    if (!(Math.abs(got - want) <= 1e-4 * want)) {
      throw new Error(`bench: ${v.preset} ${v.group} "${v.name}" computes something else (output norm ${got}, current form ${want})`);
    }
  }
  return checks;
}

/** The first row of v's preset and group: its current form. */
function current(variants: Variant[], v: Variant): Variant {
  return variants.find((u) => u.preset === v.preset && u.group === v.group)!;
}

// ---- the report ----------------------------------------------------------------------

function report(variants: Variant[], checks: Map<string, ModelCheck>): void {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU", load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  console.log(`## ONNX Runtime fp32 GEMM variants on DiT block shapes (bench/mlas_variants.ts)\n`);
  console.log(
    `${new Date().toISOString()}; ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
      `onnxruntime-node ${ortRuntime().version} CPU EP; intra-op threads chosen by ONNX Runtime unless the row says; ` +
      `${rounds} alternating rounds of ${seconds} s per row; load average ${load(loadBefore)} before, ${load(os.loadavg())} after; ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s in all.\n`,
  );
  console.log(`Batch 2 (one sample and its CFG twin), random weights; GFLOP/s counts 2 per multiply-add of the row's GEMMs.\n`);
  console.log(`| model | group | variant | shape | median ms | GFLOP/s | vs current | round medians, ms | GEMM kernels run |`);
  console.log(`|---|---|---|---|---|---|---|---|---|`);
  for (const v of variants) {
    const ms = median(v.times), ref = median(current(variants, v).times);
    console.log(
      `| ${v.preset} | ${v.group} | ${v.name} | ${v.shape} | ${ms.toFixed(2)} | ${(v.flops / ms / 1e6).toFixed(0)} | ` +
        `${(ref / ms).toFixed(2)}x | ${v.roundMs.map((x) => x.toFixed(1)).join(" / ")} | ${checks.get(v.model)!.kernels} |`,
    );
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** "session.dynamic_block_base=4,session.x=1" -> its entries. */
function parseConfig(text: string): Record<string, string> {
  const entries = text.split(",").map((pair) => {
    const at = pair.indexOf("=");
    if (at <= 0) throw new ForaError("usage", `--config "${text}": write session config entries as key=value[,key=value]`);
    return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
  });
  return Object.fromEntries(entries);
}
