/**
 * Whole-run sampling speed of fora at several FORA intervals, side by side with the
 * PyTorch implementation of the same sampling with FORA's literal per-layer cache
 * (bench/torch_sampling.py), in one run on one machine.
 *
 * DiT with random weights at the real size, DDPM with learned-range variance, one
 * sample with classifier-free guidance (scale 1.5), fp32, CPU. Only the sampling loop
 * is timed (as in the paper), after one warm-up model call. --precisions fp32,int8 times
 * fora's fp32 graphs and its int8 graphs (block linears quantized as `fora convert
 * --precision int8` does) in the same run; PyTorch stays fp32.
 *
 *   deno task bench:sampling --preset S/2-256 --steps 250 --intervals 1,2,3,5,7,10
 *   deno task bench:sampling --preset XL/2-256 --steps 20 --intervals 1,2,3 --no-torch
 *   deno task bench:sampling --preset XL/2-256 --steps 20 --intervals 1,2,3,5,10 --precisions fp32,int8
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import os from "node:os";
import { ditPreset } from "../lib/models/dit/config.ts";
import { convertBundle } from "../lib/bundle/convert.ts";
import type { Manifest, Precision } from "../lib/bundle/manifest.ts";
import { readManifest } from "../lib/bundle/read.ts";
import { openDitStepModel } from "../lib/models/dit/step_model.ts";
import { countFull, plannedKinds, staticPolicy } from "../lib/fora/policy.ts";
import { residualDenoiser } from "../lib/fora/denoiser.ts";
import { makeSampler } from "../lib/samplers/mod.ts";
import { batchNormals, sampleRngs } from "../lib/random/mod.ts";
import { writeRandomDit } from "../tools/random_dit.ts";

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "S/2-256" },
    steps: { type: "string", default: "250" },
    intervals: { type: "string", default: "1,2,3,5,7,10" },
    "no-torch": { type: "boolean", default: false },
    precisions: { type: "string", default: "fp32" },
  },
});
const precisions = args.precisions!.split(",");
for (const p of precisions) {
  if (p !== "fp32" && p !== "int8") throw new Error(`--precisions ${p}: use fp32 and/or int8 (the CPU precisions)`);
}
const cfg = ditPreset(args.preset!);
const S = Number(args.steps);
const intervals = args.intervals!.split(",").map(Number);
interface Row {
  interval: number;
  full: number;
  seconds: number;
}
const tmp = await Deno.makeTempDir({ prefix: "fora-bench-sampling-" });
try {
  console.error(`writing random ${args.preset} weights and converting ...`);
  await writeRandomDit(join(tmp, "src"), cfg);
  const { dir } = await convertBundle(join(tmp, "src"), join(tmp, "bundle"), { precisions: precisions as Precision[] });
  const manifest = await readManifest(dir);
  const fora = new Map<string, Row[]>();
  for (const precision of precisions as Precision[]) fora.set(precision, await timeFora(dir, manifest, precision));
  const torch = args["no-torch"] ? null : await runTorch(args.preset!, S, intervals);

  console.log(
    `\n${args.preset}, DDPM ${S} steps, batch 1 + CFG 1.5, PyTorch fp32, CPU (${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} cores)`,
  );
  if (torch) {
    const k = torch.blas_kernels;
    console.log(`PyTorch ${torch.torch}, ${torch.threads} threads, BLAS: ${torch.blas}`);
    console.log(`PyTorch's OpenBLAS kernels: ${k.openblas ?? "none"} (removed from its process: ${k.removed.join(", ") || "nothing"})`);
  }
  const torchBase = torch?.results.find((r) => r.interval === 1)?.seconds;
  console.log(
    `\n| fora precision | N | full steps | ideal S/full | fora s/img | fora speed-up | % of ideal | PyTorch s/img | PyTorch speed-up | fora vs PyTorch |`,
  );
  console.log(`|---|---|---|---|---|---|---|---|---|---|`);
  for (const [precision, rows] of fora) {
    const base = rows.find((r) => r.interval === 1)?.seconds;
    for (const r of rows) {
      const ideal = S / r.full;
      const speedup = base ? base / r.seconds : NaN;
      const t = torch?.results.find((x) => x.interval === r.interval);
      const cells = [
        precision,
        r.interval,
        r.full,
        `${ideal.toFixed(2)}x`,
        r.seconds.toFixed(2),
        `${speedup.toFixed(2)}x`,
        `${((100 * speedup) / ideal).toFixed(1)}%`,
        t ? t.seconds.toFixed(2) : "-",
        t && torchBase ? `${(torchBase / t.seconds).toFixed(2)}x` : "-",
        t ? `${(t.seconds / r.seconds).toFixed(2)}x` : "-",
      ];
      console.log(`| ${cells.join(" | ")} |`);
    }
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}

/** fora's whole sampling runs at every interval, on one precision's graphs. */
async function timeFora(dir: string, manifest: Manifest, precision: Precision): Promise<Row[]> {
  const session = await openDitStepModel(dir, manifest, { cfgScale: 1.5, cfgChannels: "ref" }, { precision });
  const model = session.bind([207]);
  const perSample = cfg.inChannels * cfg.inputSize ** 2;
  const shape = { batch: 1, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
  const sampler = makeSampler("ddpm", S, { learnSigma: cfg.learnSigma });
  // Warm-up: the first runs of each graph allocate and pick kernels.
  await model.full(batchNormals(sampleRngs(0, 1), perSample), 999, [995]);
  await model.reuse(batchNormals(sampleRngs(0, 1), perSample), 995, new Float32Array(model.featureSize));
  const rows: Row[] = [];
  for (const interval of intervals) {
    const policy = staticPolicy(S, interval);
    const noise = sampleRngs(1, 1);
    const xT = batchNormals(noise, perSample);
    const t0 = performance.now();
    await sampler.sample(residualDenoiser(model, policy, sampler.plan.modelTimes), xT, shape, noise);
    const seconds = (performance.now() - t0) / 1000;
    rows.push({ interval, full: countFull(plannedKinds(policy)), seconds });
    console.error(`fora ${precision} N=${interval}: ${seconds.toFixed(2)} s`);
  }
  await session.release();
  return rows;
}

interface TorchResult {
  torch: string;
  blas: string;
  /** bench/fair_blas.py's report: the kernels the peer ran on its own CPU. */
  blas_kernels: { openblas: string | null; removed: string[] };
  threads: number;
  results: { interval: number; full_steps: number; seconds: number }[];
}

async function runTorch(preset: string, steps: number, intervals: number[]): Promise<TorchResult> {
  const script = new URL("./torch_sampling.py", import.meta.url).pathname;
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [script, "--preset", preset, "--steps", String(steps), "--intervals", intervals.join(","), "--json"],
    env: { OMP_NUM_THREADS: "2" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`torch_sampling.py failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
