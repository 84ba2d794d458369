/**
 * One full step vs one FORA reuse step of DiT on the CPU EP, side by side in one run.
 * Random weights at the real size (default XL/2-256), one sample with CFG (batch 2
 * inside the graph), fp32, or int8 block linears (--precision int8, quantized as
 * `fora convert --precision int8` does). Prints a markdown table for bench/RESULTS.md.
 *
 *   deno task bench:step [--preset XL/2-256] [--precision fp32|int8] [--full-runs 3] [--reuse-runs 30]
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import os from "node:os";
import { ditPreset, numTokens, outChannels } from "../lib/models/dit/config.ts";
import { buildDitGraphs } from "../lib/models/dit/graphs.ts";
import { guidanceMask } from "../kernels/guidance.ts";
import { quantizeDitBlocks } from "../lib/models/dit/int8.ts";
import { loadCheckpoint } from "../lib/weights/checkpoint.ts";
import { weightSource } from "../lib/weights/source.ts";
import { writeModel } from "../lib/onnx/serialize.ts";
import { f32, i64, openSession, type Session } from "../lib/runtime/session.ts";
import { writeRandomDit } from "../tools/random_dit.ts";

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "XL/2-256" },
    "full-runs": { type: "string", default: "3" },
    "reuse-runs": { type: "string", default: "30" },
    /** Upcoming reuse steps whose residuals the full step emits (N - 1 for interval N). */
    residuals: { type: "string", default: "2" },
    precision: { type: "string", default: "fp32" },
  },
});
const precision = args.precision!;
if (precision !== "fp32" && precision !== "int8") throw new Error(`--precision ${precision}: use fp32 or int8 (the CPU precisions)`);
const cfg = ditPreset(args.preset!);
const dir = await Deno.makeTempDir({ prefix: "fora-bench-" });
try {
  console.error(`writing random ${args.preset} weights to ${dir} ...`);
  await writeRandomDit(join(dir, "weights"), cfg);
  const ckpt = await loadCheckpoint(join(dir, "weights"));
  const src = weightSource(ckpt, (f) => `weights/${basename(f)}`);
  const int8 = precision === "int8" ? await quantizeDitBlocks(dir, src, cfg) : undefined;
  const graphs = buildDitGraphs(src, cfg, { computeType: "float32", cfg: true, int8 });
  await writeModel(join(dir, "full.onnx"), graphs.full);
  await writeModel(join(dir, "reuse.onnx"), graphs.reuse);

  const S = cfg.inputSize, C = cfg.inChannels;
  const common = {
    latent: f32([1, C, S, S], Float32Array.from({ length: C * S * S }, (_, i) => Math.sin(i))),
    timestep: f32([1], [500]),
    class_labels: i64([1], [207]),
    guidance_scale: f32([1], [1.5]),
    guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, "ref")),
  };
  const full = await openSession(join(dir, "full.onnx"));
  const reuse = await openSession(join(dir, "reuse.onnx"));
  const J = Number(args.residuals);
  const fullFeeds = { ...common, reuse_timesteps: f32([J], Array.from({ length: J }, (_, j) => 496 - 4 * j)) };
  const bare = await timeRuns(full, { ...common, reuse_timesteps: f32([0], []) }, Number(args["full-runs"]));
  const reuseFeeds = { ...common, residual: f32([2, numTokens(cfg), cfg.hiddenSize]) };
  const fullMs = await timeRuns(full, fullFeeds, Number(args["full-runs"]));
  const reuseMs = await timeRuns(reuse, reuseFeeds, Number(args["reuse-runs"]));
  console.log(`| model | graph | median ms | runs |`);
  console.log(`|---|---|---|---|`);
  console.log(
    `| DiT-${args.preset} ${precision}, B=1 + CFG (batch 2), no residuals | full step | ${bare.median.toFixed(1)} | ${bare.runs} |`,
  );
  console.log(
    `| DiT-${args.preset} ${precision}, B=1 + CFG (batch 2), ${J} reuse residuals | full step | ${
      fullMs.median.toFixed(1)
    } | ${fullMs.runs} |`,
  );
  console.log(`| DiT-${args.preset} ${precision}, B=1 + CFG (batch 2) | reuse step | ${reuseMs.median.toFixed(2)} | ${reuseMs.runs} |`);
  console.log(`\nreuse / full = ${(100 * reuseMs.median / fullMs.median).toFixed(3)}%`);
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.cpus().length} cores, ${
      (os.totalmem() / 2 ** 30).toFixed(0)
    } GiB; onnxruntime-node CPU EP`,
  );
  await full.release();
  await reuse.release();
} finally {
  await Deno.remove(dir, { recursive: true });
}

async function timeRuns(s: Session, feeds: Parameters<Session["run"]>[0], runs: number) {
  await s.run(feeds); // warm-up: first run allocates and picks kernels
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], runs };
}
