/**
 * `fora generate` as a library function: one batch sampled from a DiT bundle with FORA
 * caching (lib/generator.ts), written as PNGs, and reported through one event callback
 * where the NDJSON stream or the progress display attach.
 */
import { emitStep, signalName } from "./events/steps.ts";
import { dirname, extname, join } from "node:path";
import { ForaError, interrupted, isInterrupted } from "./errors.ts";
import { describePolicy, intervalOf, plannedKinds } from "./fora/policy.ts";
import type { StepReport } from "./fora/denoiser.ts";
import { type GeneratorSettings, openGenerator } from "./generator.ts";
import { readNpy, writeNpy } from "./io/npy.ts";
import { describeNonFinite, firstNonFinite } from "./io/finite.ts";
import { writePng } from "./io/png.ts";
import { makeGrid } from "./io/image.ts";
import { stamper } from "./events/stamp.ts";
import { runTotals, stepsMs } from "./events/totals.ts";
import { type EmitEvent, type JsonValue, type RunTotals, SCHEMA_VERSION } from "./events/types.ts";

/** A resolved run (lib/resolve.ts) with PixArt's text options, and what `fora generate` samples and writes. */
export interface GenerateOptions extends GeneratorSettings {
  /** Class ids, one per sample (class-conditional models; ignored with `prompts`). */
  classes: number[];
  /** Text prompts, one per sample: a PixArt-alpha bundle. */
  prompts?: string[];
  seed: number;
  /** A folder, or a FILE.png (one sample; with several, FILE-<index>.png). */
  out: string;
  grid: boolean;
  latentsIn?: string;
  latentsOut?: string;
  /** The schedule file the policy was read from (reported in run_start's flags). */
  schedule?: string;
  /** Aborted with "SIGINT" or "SIGTERM" as reason: stop at the next step boundary. */
  signal?: AbortSignal;
}

export async function generate(opts: GenerateOptions, emit: EmitEvent): Promise<RunTotals> {
  const events = stamper(emit);
  const planned = plannedKinds(opts.policy);
  await checkOutput(opts.out);
  if (opts.latentsOut) await checkWritable("--latents-out", opts.latentsOut, dirname(opts.latentsOut));
  const prompts = opts.prompts;
  const gen = await openGenerator(opts);
  const B = prompts ? prompts.length : opts.classes.length;
  let xT: Float32Array | undefined;
  try {
    // Before run_start: a bad input means the run never started.
    if (!gen.canDecode && !opts.latentsOut) {
      const C = gen.latentShape(1)[1];
      throw new ForaError(
        "usage",
        `${opts.model} has no VAE and ${C}-channel latents, so it cannot write images; pass --latents-out FILE.npy to keep the latents`,
      );
    }
    if (opts.latentsIn) xT = await readLatents(opts.latentsIn, gen.latentShape(B));
  } catch (e) {
    await gen.release();
    throw e;
  }
  const steps: StepReport[] = [];
  let samplingMs = 0, decodeMs = 0;
  try {
    events.emit({
      event: "run_start",
      model: { bundle: opts.model, architecture: gen.manifest.architecture },
      flags: flagsOf(opts),
      size: { sampled: gen.sampledSize, output: opts.sized?.output ?? gen.sampledSize },
      plan: {
        steps: opts.steps,
        // A dynamic policy decides some steps as it runs: they are "decide" here, and their
        // step events say what was decided.
        full: planned.flatMap((k, i) => (k === "full" ? [i] : [])),
        kind: [...planned],
        policy: describePolicy(opts.policy),
      },
      schema_version: SCHEMA_VERSION,
    });
    const onStep = (r: StepReport) => {
      steps.push(r);
      emitStep(events, r);
    };
    const batch = await gen.sampleBatch({
      classes: opts.classes,
      prompts: prompts ?? [],
      seed: opts.seed,
      firstIndex: 0,
      xT,
      signal: opts.signal,
    }, onStep);
    // A signal that arrives while decoding or writing stops the run before its images are written.
    if (opts.signal?.aborted) throw interrupted(signalName(opts.signal));
    samplingMs = batch.samplingMs;
    decodeMs = batch.decodeMs;
    if (opts.latentsOut) await writeNpy(opts.latentsOut, { shape: gen.latentShape(B), data: batch.x0 });
    const paths = outputPaths(opts, B);
    for (let b = 0; b < batch.images.length; b++) {
      await writePng(paths[b], batch.images[b]);
      events.emit({
        event: "image",
        path: paths[b],
        seed: opts.seed,
        class: prompts ? null : opts.classes[b],
        class_name: gen.manifest.architecture === "dit" ? gen.manifest.dit.classNames?.[opts.classes[b]] ?? null : null,
        prompt: prompts ? prompts[b] : null,
        index: b,
        width: batch.images[b].width,
        height: batch.images[b].height,
        sampled_width: gen.sampledSize.width,
        sampled_height: gen.sampledSize.height,
      });
    }
    if (opts.grid && batch.images.length > 1) await writePng(gridPath(opts, paths), makeGrid(batch.images, Math.ceil(Math.sqrt(B))));
  } catch (e) {
    // Stopped while sampling: the steps that ran are the sampling time so far.
    if (samplingMs === 0) samplingMs = stepsMs(steps);
    if (isInterrupted(e)) events.emit({ event: "run_end", status: "interrupted", totals: totals() });
    else events.emit({ event: "run_end", status: "error", error: (e as Error).message, totals: totals() });
    throw e;
  } finally {
    await gen.release();
  }
  const result = totals();
  events.emit({ event: "run_end", status: "ok", totals: result });
  return result;

  function totals(): RunTotals {
    return runTotals(steps, samplingMs, decodeMs, events.elapsedMs());
  }
}

async function readLatents(path: string, want: number[]): Promise<Float32Array> {
  const a = await readNpy(path);
  if (a.shape.length !== want.length || a.shape.some((d, i) => d !== want[i])) {
    throw new ForaError(
      "usage",
      `--latents-in ${path}: shape [${a.shape}] does not match this run's latent [${want}] (batch, channels, height, width)`,
    );
  }
  const bad = firstNonFinite(a.data);
  if (bad >= 0) {
    throw new ForaError(
      "io",
      `--latents-in ${path}: holds a non-finite value (${describeNonFinite(a.data, bad)}); give a latent of finite numbers`,
    );
  }
  return a.data;
}

function outputPaths(opts: GenerateOptions, B: number): string[] {
  if (extname(opts.out).toLowerCase() === ".png") {
    if (B === 1) return [opts.out];
    const stem = opts.out.slice(0, -4);
    return Array.from({ length: B }, (_, b) => `${stem}-${b}.png`);
  }
  const what = (b: number) => (opts.prompts ? `prompt-${promptSlug(opts.prompts[b])}` : `class${opts.classes[b]}`);
  return Array.from({ length: B }, (_, b) => join(opts.out, `fora-seed${opts.seed}-${b}-${what(b)}.png`));
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

function flagsOf(opts: GenerateOptions): { [k: string]: JsonValue } {
  return {
    model: opts.model,
    classes: opts.classes,
    sampler: opts.sampler,
    steps: opts.steps,
    cfg: opts.cfg,
    cfg_channels: opts.cfgChannels,
    seed: opts.seed,
    cache_interval: intervalOf(opts.policy),
    policy: opts.policy.kind,
    schedule: opts.schedule ?? null,
    out: opts.out,
    grid: opts.grid,
    latents_in: opts.latentsIn ?? null,
    latents_out: opts.latentsOut ?? null,
    precision: opts.precision,
    device: opts.device,
    ...(opts.prompts
      ? {
        classes: null,
        prompts: opts.prompts,
        clean_caption: opts.cleanCaption ?? true,
        cache_cross_attn: (opts.cacheCrossAttention ?? true) ? "on" : "off",
        embeddings_cache: opts.embeddingsCache ?? null,
      }
      : {}),
  };
}

/** A file-name-safe word of a prompt: "A red fox, at dawn" -> "a-red-fox-at-dawn" (40 characters at most). */
export function promptSlug(prompt: string): string {
  const slug = prompt.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/, "");
  return slug === "" ? "empty" : slug;
}
