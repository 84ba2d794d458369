/**
 * `fora generate` as a library function: sample a batch from a DiT bundle with FORA
 * caching, decode it, write PNGs, and report everything through one event callback.
 *
 * The pieces stay apart: the sampler only sees a Denoiser; the planner (lib/fora)
 * turns the cache plan into that Denoiser over the step model; events leave through
 * `emit`, where the NDJSON stream or the progress display attach.
 */
import { dirname, extname, join } from "node:path";
import { ForaError } from "./errors.ts";
import { type Manifest, readManifest, type Precision, vaeGraphFile } from "./bundle/manifest.ts";
import { openDitStepModel } from "./models/dit/step_model.ts";
import { staticIntervalPlan } from "./fora/policy.ts";
import { residualDenoiser, type StepReport } from "./fora/denoiser.ts";
import { makeSampler, type SamplerName } from "./samplers/mod.ts";
import { batchNormals, sampleRngs } from "./random/mod.ts";
import { readNpy, writeNpy } from "./io/npy.ts";
import { writePng } from "./io/png.ts";
import { type Image, makeGrid, toUint8Image } from "./io/image.ts";
import { type Device, f32, openSession } from "./runtime/session.ts";
import { stamper } from "./events/stamp.ts";
import { summarizeSteps } from "./events/totals.ts";
import type { EmitEvent, JsonValue, RunTotals } from "./events/types.ts";

export interface GenerateOptions {
  /** Bundle folder made by `fora convert`. */
  model: string;
  /** Class ids, one per sample. */
  classes: number[];
  sampler: SamplerName;
  steps: number;
  cfg: number;
  cfgChannels: "ref" | "all";
  seed: number;
  cacheInterval: number;
  /** A folder, or a FILE.png (one sample; with several, FILE-<index>.png). */
  out: string;
  grid: boolean;
  latentsIn?: string;
  latentsOut?: string;
  precision?: Precision;
  device?: Device;
  threads?: number;
}

/** Pixel-space samples this small are enlarged (nearest) so a person can see them. */
const MIN_VISIBLE_SIDE = 256;

export async function generate(opts: GenerateOptions, emit: EmitEvent): Promise<RunTotals> {
  const events = stamper(emit);
  const manifest = await readManifest(opts.model);
  const cfg = manifest.dit.config;
  const B = opts.classes.length;
  const shape = { batch: B, channels: cfg.inChannels, height: cfg.inputSize, width: cfg.inputSize };
  const perSample = cfg.inChannels * cfg.inputSize ** 2;
  const sampler = makeSampler(opts.sampler, opts.steps, { learnSigma: cfg.learnSigma });
  const plan = staticIntervalPlan(opts.steps, opts.cacheInterval);
  const xT = opts.latentsIn ? await readLatents(opts.latentsIn, [B, cfg.inChannels, cfg.inputSize, cfg.inputSize]) : null;
  await checkOutput(opts.out);
  if (opts.latentsOut) await checkWritable("--latents-out", opts.latentsOut, dirname(opts.latentsOut));

  events.emit({
    event: "run_start",
    model: { bundle: opts.model, architecture: manifest.architecture },
    flags: flagsOf(opts),
    plan: {
      steps: opts.steps,
      full: plan.kinds.flatMap((k, i) => (k === "full" ? [i] : [])),
      kind: plan.kinds,
      policy: plan.policy,
    },
    schema_version: 1,
  });

  const steps: StepReport[] = [];
  let samplingMs = 0, decodeMs = 0;
  const model = await openDitStepModel(opts.model, manifest, {
    labels: opts.classes,
    cfgScale: opts.cfg,
    cfgChannels: opts.cfgChannels,
  }, { precision: opts.precision, device: opts.device, threads: opts.threads });
  try {
    const onStep = (r: StepReport) => {
      steps.push(r);
      events.emit({ event: "step", index: r.index, k: r.k, timestep: r.modelTime, kind: r.kind, ms: round(r.ms) });
      events.emit({ event: "cache", index: r.index, attn: hitString(r.attnHits), mlp: hitString(r.mlpHits) });
    };
    const noise = sampleRngs(opts.seed, B);
    // x_T is always drawn first (the SampleNoise convention), so that with --latents-in the
    // sampler's later noise is the seeded run's: --latents-in of a run's own x_T reproduces it.
    const drawn = batchNormals(noise, perSample);
    const x = xT ?? drawn;
    const t0 = performance.now();
    const x0 = await sampler.sample(residualDenoiser(model, plan, sampler.plan.modelTimes, onStep), x, shape, noise);
    samplingMs = performance.now() - t0;
    if (opts.latentsOut) await writeNpy(opts.latentsOut, { shape: [B, cfg.inChannels, cfg.inputSize, cfg.inputSize], data: x0 });

    const t1 = performance.now();
    const images = await decode(opts, manifest, x0, B);
    decodeMs = performance.now() - t1;
    const paths = outputPaths(opts, B);
    for (let b = 0; b < B; b++) {
      await writePng(paths[b], images[b]);
      events.emit({
        event: "image",
        path: paths[b],
        seed: opts.seed,
        class: opts.classes[b],
        class_name: null,
        prompt: null,
        index: b,
        width: images[b].width,
        height: images[b].height,
      });
    }
    if (opts.grid && B > 1) await writePng(gridPath(opts, paths), makeGrid(images, Math.ceil(Math.sqrt(B))));
  } catch (e) {
    events.emit({ event: "run_end", status: "error", error: (e as Error).message, totals: totals() });
    throw e;
  } finally {
    await model.release();
  }
  const result = totals();
  events.emit({ event: "run_end", status: "ok", totals: result });
  return result;

  function totals(): RunTotals {
    const s = summarizeSteps(steps);
    return {
      full_steps: s.full_steps,
      reuse_steps: s.reuse_steps,
      sampling_ms: round(samplingMs),
      decode_ms: round(decodeMs),
      wall_ms: round(events.elapsedMs()),
      speedup_estimate: s.speedup_estimate,
    };
  }
}

async function decode(opts: GenerateOptions, manifest: Manifest, x0: Float32Array, B: number): Promise<Image[]> {
  const cfg = manifest.dit.config;
  const S = cfg.inputSize, C = cfg.inChannels;
  if (!manifest.vae) {
    if (C !== 1 && C !== 3) {
      throw new ForaError("bundle", `${opts.model}: a model without a VAE must have 1 or 3 channels to be saved as an image (it has ${C}); use --latents-out`);
    }
    const upscale = Math.max(1, Math.floor(MIN_VISIBLE_SIDE / S));
    return Array.from({ length: B }, (_, b) => toUint8Image(x0.subarray(b * C * S * S, (b + 1) * C * S * S), [C, S, S], upscale));
  }
  const precision = opts.precision ?? "fp32";
  const session = await openSession(join(opts.model, vaeGraphFile(precision)), { device: opts.device, threads: opts.threads });
  try {
    const out = await session.run({ latent: f32([B, C, S, S], x0) });
    const [, oc, oh, ow] = out.image.shape;
    const data = out.image.data as Float32Array, n = oc * oh * ow;
    return Array.from({ length: B }, (_, b) => toUint8Image(data.subarray(b * n, (b + 1) * n), [oc, oh, ow]));
  } finally {
    await session.release();
  }
}

async function readLatents(path: string, want: number[]): Promise<Float32Array> {
  const a = await readNpy(path);
  if (a.shape.length !== want.length || a.shape.some((d, i) => d !== want[i])) {
    throw new ForaError("usage", `--latents-in ${path}: shape [${a.shape}] does not match this run's latent [${want}] (batch, channels, height, width)`);
  }
  return a.data;
}

function outputPaths(opts: GenerateOptions, B: number): string[] {
  if (extname(opts.out).toLowerCase() === ".png") {
    if (B === 1) return [opts.out];
    const stem = opts.out.slice(0, -4);
    return Array.from({ length: B }, (_, b) => `${stem}-${b}.png`);
  }
  return Array.from({ length: B }, (_, b) => join(opts.out, `fora-seed${opts.seed}-${b}-class${opts.classes[b]}.png`));
}

function gridPath(opts: GenerateOptions, paths: string[]): string {
  return extname(opts.out).toLowerCase() === ".png"
    ? `${opts.out.slice(0, -4)}-grid.png`
    : join(dirname(paths[0]), `fora-seed${opts.seed}-grid.png`);
}

/** Fails before sampling (not after minutes of it) when the output cannot be written. */
async function checkOutput(out: string): Promise<void> {
  await checkWritable("--out", out, extname(out).toLowerCase() === ".png" ? dirname(out) : out);
}

async function checkWritable(flag: string, value: string, folder: string): Promise<void> {
  try {
    await Deno.mkdir(folder, { recursive: true });
    const probe = join(folder, `.fora-write-test-${crypto.randomUUID().slice(0, 8)}`);
    await Deno.writeFile(probe, new Uint8Array());
    await Deno.remove(probe);
  } catch (e) {
    throw new ForaError("io", `${flag} ${value}: cannot write to ${folder} (${(e as Error).message}); choose a writable folder`);
  }
}

function hitString(hits: boolean[]): string {
  return hits.map((h) => (h ? "H" : "M")).join("");
}

function flagsOf(opts: GenerateOptions): { [k: string]: JsonValue } {
  return {
    model: opts.model,
    classes: opts.classes,
    sampler: opts.sampler,
    steps: opts.steps,
    cfg: opts.cfg,
    cfg_channels: opts.cfgChannels,
    seed: opts.seed,
    cache_interval: opts.cacheInterval,
    out: opts.out,
    grid: opts.grid,
    latents_in: opts.latentsIn ?? null,
    latents_out: opts.latentsOut ?? null,
    precision: opts.precision ?? "fp32",
    device: opts.device ?? "cpu",
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
