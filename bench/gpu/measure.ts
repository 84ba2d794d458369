/**
 * fora's side of the GPU measurement (bench/gpu/run.sh runs it on the GPU machine):
 * whole-run sampling time per image at several FORA intervals on one device.
 *
 *   prepare  writes a random-weight DiT at the real size (or converts --source) into a
 *            bundle with the graphs of --precision; prints the bundle folder.
 *   run      one device: warm-up, then DDPM sampling (learned-range variance), one sample
 *            with classifier-free guidance (scale 1.5, batch 2 inside the graph), each interval
 *            --repeats times; only the sampling loop is timed, as in the paper. Also one full
 *            step on this device against the same step in fp32 on the CPU (relative error),
 *            so a fast but wrong device shows.
 *   devices  the device report (lib/runtime/devices.ts) as JSON.
 *
 *   deno run -A bench/gpu/measure.ts prepare --work /tmp/fora-gpu/work --preset XL/2-256 --precision fp16
 *   deno run -A bench/gpu/measure.ts run --work /tmp/fora-gpu/work --device cuda --precision fp16 --intervals 1,3 --json OUT.json
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import os from "node:os";
import { ditPreset } from "../../lib/models/dit/config.ts";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { openDitStepModel } from "../../lib/models/dit/step_model.ts";
import { countFull, plannedKinds, staticPolicy } from "../../lib/fora/policy.ts";
import { residualDenoiser } from "../../lib/fora/denoiser.ts";
import { makeSampler } from "../../lib/samplers/mod.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import { describeDevices, type DeviceChoice, resolveDevice } from "../../lib/runtime/devices.ts";
import { ortRuntime } from "../../lib/runtime/machine.ts";
import { writeRandomDit } from "../../tools/random_dit.ts";
import { isForaError } from "../../lib/errors.ts";

const CFG_SCALE = 1.5;
const CLASS_LABEL = 207;

const { positionals, values: args } = parseArgs({
  allowPositionals: true,
  options: {
    work: { type: "string", default: join(os.tmpdir(), "fora-gpu-work") },
    preset: { type: "string", default: "XL/2-256" },
    source: { type: "string" },
    precision: { type: "string", default: "fp16" },
    device: { type: "string", default: "auto" },
    steps: { type: "string", default: "250" },
    intervals: { type: "string", default: "1,3" },
    repeats: { type: "string", default: "2" },
    "no-check": { type: "boolean", default: false },
    json: { type: "string" },
  },
});

const log = (...a: unknown[]) => console.error(...a);
const cmd = positionals[0];
const bundle = join(args.work!, "bundle");

try {
  if (cmd === "devices") {
    console.log(JSON.stringify(describeDevices(), null, 2));
  } else if (cmd === "prepare") {
    await prepare();
  } else if (cmd === "run") {
    await run();
  } else {
    log("usage: measure.ts prepare|run|devices [options] (see the file's header)");
    Deno.exit(2);
  }
} catch (e) {
  // fora's own errors are the report (what is missing, where, how to get it); anything else is a bug.
  if (!isForaError(e)) throw e;
  log(`error: ${e.message}`);
  Deno.exit(1);
}

async function prepare(): Promise<void> {
  const precisions = args.precision!.split(",") as ("fp32" | "fp16")[];
  let src = args.source;
  const t0 = performance.now();
  if (!src) {
    src = join(args.work!, "src");
    log(`writing random ${args.preset} weights to ${src} ...`);
    await writeRandomDit(src, ditPreset(args.preset!));
  }
  log(`converting ${src} (${precisions.join(", ")}) ...`);
  await Deno.remove(bundle, { recursive: true }).catch(() => {});
  await convertBundle(src, bundle, { precisions, copyWeights: false });
  log(`bundle ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${bundle}`);
  console.log(bundle);
}

interface IntervalResult {
  interval: number;
  full_steps: number;
  reuse_steps: number;
  seconds: number;
  seconds_min: number;
  seconds_runs: number[];
  speedup_vs_n1: number | null;
  ideal_speedup: number;
  finite: boolean;
}

async function run(): Promise<void> {
  const precision = args.precision as "fp32" | "fp16";
  const device = await resolveDevice(args.device as DeviceChoice);
  const steps = Number(args.steps), repeats = Number(args.repeats);
  const intervals = args.intervals!.split(",").map(Number);
  const manifest = await readManifest(bundle);
  const cfg = manifest.dit.config;
  const label = Math.min(CLASS_LABEL, cfg.numClasses - 1);
  const perSample = cfg.inChannels * cfg.inputSize ** 2;
  const shape = { batch: 1, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
  const sampler = makeSampler("ddpm", steps, { learnSigma: cfg.learnSigma });

  const tOpen = performance.now();
  const session = await openDitStepModel(bundle, manifest, { cfgScale: CFG_SCALE, cfgChannels: "ref" }, { precision, device });
  const openSeconds = (performance.now() - tOpen) / 1000;
  const model = session.bind([label]);
  const x0 = batchNormals(sampleRngs(0, 1), perSample);
  // Warm-up: the first runs of each graph allocate, pick kernels (cuDNN/cuBLAS) and compile shaders.
  const tWarm = performance.now();
  for (let i = 0; i < 2; i++) {
    await model.full(x0, 999, [995, 991]);
    await model.reuse(x0, 995, new Float32Array(model.featureSize));
  }
  const warmSeconds = (performance.now() - tWarm) / 1000;
  log(`${device} ${precision}: sessions opened in ${openSeconds.toFixed(1)} s, warm-up ${warmSeconds.toFixed(1)} s`);

  const results: IntervalResult[] = [];
  for (const interval of intervals) {
    const policy = staticPolicy(steps, interval);
    const full = countFull(plannedKinds(policy));
    const runs: number[] = [];
    let finite = true;
    for (let r = 0; r < repeats; r++) {
      const noise = sampleRngs(1, 1);
      const xT = batchNormals(noise, perSample);
      const t0 = performance.now();
      const x = await sampler.sample(residualDenoiser(model, policy, sampler.plan.modelTimes), xT, shape, noise);
      runs.push((performance.now() - t0) / 1000);
      finite &&= x.every(Number.isFinite);
    }
    const seconds = median(runs);
    results.push({
      interval,
      full_steps: full,
      reuse_steps: steps - full,
      seconds,
      seconds_min: Math.min(...runs),
      seconds_runs: runs,
      speedup_vs_n1: null,
      ideal_speedup: steps / full,
      finite,
    });
    log(
      `${device} ${precision} N=${interval}: ${seconds.toFixed(3)} s/image (runs ${runs.map((s) => s.toFixed(3)).join(", ")})${
        finite ? "" : " NON-FINITE"
      }`,
    );
  }
  const base = results.find((r) => r.interval === 1)?.seconds;
  for (const r of results) r.speedup_vs_n1 = base ? base / r.seconds : null;

  // One full step here vs the same step in fp32 on the CPU: max |a - b| / max |b|.
  let check: { rel_error: number; cpu_seconds: number } | null = null;
  if (!args["no-check"] && !(device === "cpu" && precision === "fp32")) {
    const here = await model.full(x0, 999, [995, 991]);
    await session.release();
    const t0 = performance.now();
    const cpu = await openDitStepModel(bundle, manifest, { cfgScale: CFG_SCALE, cfgChannels: "ref" }, { precision: "fp32", device: "cpu" })
      .catch((e) => {
        log(`no fp32 CPU check: ${(e as Error).message}`);
        return null;
      });
    if (cpu) {
      const ref = await cpu.bind([label]).full(x0, 999, [995, 991]);
      await cpu.release();
      check = { rel_error: relError(here.out, ref.out), cpu_seconds: (performance.now() - t0) / 1000 };
      log(`one full step, ${device} ${precision} vs cpu fp32: relative error ${check.rel_error.toExponential(2)}`);
    }
  } else {
    await session.release();
  }

  const report = {
    implementation: "fora",
    onnxruntime: ortRuntime().version,
    device,
    precision,
    config: { depth: cfg.depth, hidden: cfg.hiddenSize, heads: cfg.numHeads, patch: cfg.patchSize, latent: cfg.inputSize },
    steps,
    batch: 1,
    cfg_scale: CFG_SCALE,
    sampler: "ddpm-learned-range",
    open_seconds: openSeconds,
    warmup_seconds: warmSeconds,
    check_vs_cpu_fp32: check,
    results,
  };
  const text = JSON.stringify(report, null, 2);
  if (args.json) await Deno.writeTextFile(args.json, text + "\n");
  else console.log(text);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** max |a - b| / max |b|, the measure every parity test of this project states. */
function relError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}
