/**
 * `fora sample` as a library function: many images from a DiT bundle for an evaluation,
 * written as .npz batches (and optionally PNGs) into one shard folder (folder.ts), resumable
 * and exactly reproducible. Image k always gets class classOf(k) and noise from the
 * generator of (seed, k) (lib/random), so any subset of a run can be sampled again alone,
 * and the batches of an unsharded run, of its shards, and of a resumed run are the same.
 *
 * A run: read the bundle; create or reopen the folder and take its lock (one run per folder:
 * lock.ts); remove temp files killed runs left; check that a reopened folder holds the same
 * run (same settings and shard); check every batch the journal records (file sizes and
 * sha256s) and keep those that pass; sample the others in order, writing each batch's PNGs,
 * then its .npz, then its journal line. A SIGINT or SIGTERM stops at the next step boundary
 * (a batch whose sampling had finished is still saved); run again with the same flags to go on.
 */
import { emitStep, signalName } from "../events/steps.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import * as fastPng from "fast-png";
import { ForaError, interrupted, isInterrupted } from "../errors.ts";
import type { Manifest } from "../bundle/manifest.ts";
import type { RunSettings } from "../resolve.ts";
import { FORA_VERSION } from "../bundle/version.ts";
import { type CachePolicy, describePolicy, intervalOf, plannedKinds, POLICY_DEFAULTS } from "../fora/policy.ts";
import type { StepReport } from "../fora/denoiser.ts";
import { type Generator, openGenerator } from "../generator.ts";
import type { Image } from "../io/image.ts";
import { type Stamper, stamper } from "../events/stamp.ts";
import { runTotals, stepsMs } from "../events/totals.ts";
import { type EmitEvent, type JsonValue, type RunTotals, SCHEMA_VERSION } from "../events/types.ts";
import { ioReason, removeStaleTemps, sha256Hex, writeAtomicWith, writeBytesAtomic } from "./files.ts";
import {
  appendJournal,
  type BatchRecord,
  type FileCheck,
  isSampleFileName,
  JOURNAL_FILE,
  npzName,
  PNG_DIR,
  pngName,
  readJournal,
  readRunFile,
  rewriteJournal,
  RUN_FILE,
  type RunRecord,
  SAMPLE_FORMAT,
  SAMPLE_FORMAT_VERSION,
  type SampleSettings,
  settingsDiff,
  verifyBatch,
  writeRunFile,
} from "./folder.ts";
import { type FolderLock, lockFolder } from "./lock.ts";
import { npzWriter } from "./npz.ts";
import { batchRange, classesOf, formatShard, type Shard, shardBatches, shardImages } from "./plan.ts";

/** A resolved run on a DiT bundle (lib/resolve.ts) and the images to sample into the shard folder. */
export interface SampleOptions extends RunSettings<Manifest> {
  num: number;
  /** Class ids cycled over the images, or "uniform" (seeded uniform draws). */
  classes: number[] | "uniform";
  /** Images per batch, file and step of resumption. */
  batch: number;
  seed: number;
  shard: Shard;
  /** The shard's folder. */
  out: string;
  /** Also write each image as DIR/png/NNNNNN.png. */
  png: boolean;
  /** Aborted with "SIGINT" or "SIGTERM" as reason: stop at the next step boundary. */
  signal?: AbortSignal;
}

export interface SampleResult {
  totals: RunTotals;
  /** Images of the shard written by this run, and found complete from earlier runs. */
  written: number;
  verified: number;
  total: number;
}

export async function sample(opts: SampleOptions, emit: EmitEvent): Promise<SampleResult> {
  const events = stamper(emit);
  const manifest = opts.manifest;
  const policy = opts.policy;
  const run = runRecordOf(opts);
  const lock = await prepareFolder(opts.out, opts.png);
  try {
    return await sampleLocked(opts, events, manifest, policy, run);
  } finally {
    await lock.release();
  }
}

/** `sample` once the folder is this run's alone. */
async function sampleLocked(
  opts: SampleOptions,
  events: Stamper,
  manifest: Manifest,
  policy: CachePolicy,
  run: RunRecord,
): Promise<SampleResult> {
  const planned = plannedKinds(policy);
  const { settings } = run;
  const { start, end } = shardBatches(settings.num, settings.batch, opts.shard);
  const total = shardImages(settings.num, settings.batch, opts.shard).count;

  // ---- before run_start: the folder's run, and what is already done ----
  const existing = await readRunFile(opts.out);
  if (existing) checkSameRun(existing, run, opts.out);
  else await writeRunFile(opts.out, run);
  const journal = await readJournal(opts.out, run);
  const done = new Map<number, BatchRecord>();
  const invalid: { j: number; reason: string }[] = [];
  for (const [j, rec] of journal.records) {
    const problem = await verifyBatch(opts.out, run, rec);
    if (problem === null) done.set(j, rec);
    else invalid.push({ j, reason: problem });
  }
  if (journal.dropped > 0 || journal.unterminated || invalid.length > 0) await rewriteJournal(opts.out, done.values());

  const steps: StepReport[] = [];
  let samplingMs = 0, decodeMs = 0, written = 0;
  /** Where the batch being sampled starts in `steps`; -1 between batches. */
  let batchSteps = -1;
  let doneImages = [...done.values()].reduce((n, r) => n + r.count, 0);
  const verified = doneImages;
  let gen: Generator | null = null;
  const path = (j: number) => {
    const r = batchRange(settings.num, settings.batch, j);
    return join(opts.out, npzName(r.first, r.count, settings.num));
  };
  try {
    events.emit({
      event: "run_start",
      model: { bundle: opts.model, architecture: manifest.architecture },
      flags: flagsOf(opts),
      plan: {
        steps: opts.steps,
        full: planned.flatMap((k, i) => (k === "full" ? [i] : [])),
        kind: [...planned],
        policy: describePolicy(policy),
      },
      schema_version: SCHEMA_VERSION,
    });
    for (let j = start; j < end; j++) {
      const r = batchRange(settings.num, settings.batch, j);
      if (done.has(j)) {
        events.emit({ event: "batch", path: path(j), ...r, status: "verified", reason: null, done: doneImages, total });
      }
    }
    for (const { j, reason } of invalid) {
      const r = batchRange(settings.num, settings.batch, j);
      events.emit({ event: "batch", path: path(j), ...r, status: "invalid", reason, done: doneImages, total });
    }
    const onStep = (r: StepReport) => {
      steps.push(r);
      emitStep(events, r);
    };
    for (let j = start; j < end; j++) {
      if (done.has(j)) continue;
      if (opts.signal?.aborted) throw interrupted(signalName(opts.signal));
      gen ??= await openForSampling(opts);
      const range = batchRange(settings.num, settings.batch, j);
      const classes = classesOf(settings.classes, settings.model.numClasses, settings.seed, range);
      // Images at the model's own resolution: the VAE's output, or the pixel-space samples themselves.
      const req = { classes, seed: settings.seed, firstIndex: range.first, signal: opts.signal };
      batchSteps = steps.length;
      const result = await gen.sampleBatch(req, onStep, { enlarge: () => 1 });
      batchSteps = -1;
      samplingMs += result.samplingMs;
      decodeMs += result.decodeMs;
      const rec = await saveBatch(opts.out, run, range, classes, result.images);
      done.set(j, rec);
      doneImages += range.count;
      written += range.count;
      events.emit({ event: "batch", path: path(j), ...range, status: "written", reason: null, done: doneImages, total });
    }
  } catch (e) {
    // A batch stopped while sampling: its steps so far are sampling time too.
    if (batchSteps >= 0) samplingMs += stepsMs(steps.slice(batchSteps));
    if (isInterrupted(e)) events.emit({ event: "run_end", status: "interrupted", totals: totals() });
    else events.emit({ event: "run_end", status: "error", error: (e as Error).message, totals: totals() });
    throw e;
  } finally {
    await gen?.release();
  }
  const result = totals();
  events.emit({ event: "run_end", status: "ok", totals: result });
  return { totals: result, written, verified, total };

  function totals(): RunTotals {
    return runTotals(steps, samplingMs, decodeMs, events.elapsedMs());
  }
}

/** The run record of these options on this bundle; checks class ids against the model. */
export function runRecordOf(opts: SampleOptions): RunRecord {
  const { manifest } = opts;
  const { policy } = opts;
  const numClasses = manifest.dit.config.numClasses;
  if (opts.classes !== "uniform") {
    if (opts.classes.length === 0) throw new ForaError("usage", "--class: give at least one class id, or none for uniform classes");
    for (const c of opts.classes) {
      if (c >= numClasses) throw new ForaError("usage", `--class ${c} is out of range: this model has classes 0..${numClasses - 1}`);
    }
  }
  const settings: SampleSettings = {
    foraVersion: FORA_VERSION,
    model: { fingerprint: modelFingerprint(manifest), architecture: manifest.architecture, numClasses },
    sampler: opts.sampler,
    steps: opts.steps,
    cfg: opts.cfg,
    cfgChannels: opts.cfgChannels,
    cacheInterval: recordedInterval(policy),
    plan: {
      policy: policy.kind,
      params: describePolicy(policy).params,
      kinds: plannedKinds(policy).map((k) => (k === "full" ? "F" : k === "reuse" ? "R" : "D")).join(""),
    },
    precision: opts.precision,
    device: opts.device,
    seed: opts.seed,
    num: opts.num,
    batch: opts.batch,
    classes: opts.classes === "uniform" ? "uniform" : [...opts.classes],
  };
  return { format: SAMPLE_FORMAT, formatVersion: SAMPLE_FORMAT_VERSION, settings, shard: opts.shard, png: opts.png };
}

/** sha256 of the bundle's file list (path, size, sha256 of every graph and weight file). */
export function modelFingerprint(manifest: Manifest): string {
  const files = [...manifest.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return createHash("sha256").update(JSON.stringify(files.map((f) => [f.path, f.size, f.sha256]))).digest("hex");
}

function checkSameRun(existing: RunRecord, run: RunRecord, dir: string): void {
  const diff = settingsDiff(existing.settings, run.settings, `${dir} (an earlier run)`, "this command");
  const fix = `run the earlier command again to resume it, or choose a new --out folder`;
  if (diff) throw new ForaError("usage", `${dir} holds a different sample run: ${diff}; ${fix}`);
  if (existing.shard.index !== run.shard.index || existing.shard.count !== run.shard.count) {
    throw new ForaError("usage", `${dir} holds shard ${formatShard(existing.shard)}, not --shard ${formatShard(run.shard)}; ${fix}`);
  }
  if (existing.png !== run.png) {
    throw new ForaError("usage", `${dir} was started ${existing.png ? "with" : "without"} --png; ${fix}`);
  }
}

/**
 * Creates the folder (and png/) and takes its lock (lock.ts); then removes the temp files
 * of killed runs: with the lock held, no live run is writing them.
 */
async function prepareFolder(dir: string, png: boolean): Promise<FolderLock> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    if (png) await Deno.mkdir(join(dir, PNG_DIR), { recursive: true });
  } catch (e) {
    throw new ForaError("io", `--out ${dir}: cannot create the folder: ${ioReason(e)}; choose a writable folder`);
  }
  const st = await Deno.stat(dir);
  if (!st.isDirectory) throw new ForaError("io", `--out ${dir} is not a folder`);
  const lock = await lockFolder(dir);
  try {
    await removeStaleTemps(dir, isSampleFileName);
    if (png) await removeStaleTemps(join(dir, PNG_DIR), isSampleFileName);
    // A journal with no run file is not ours to extend.
    const hasRun = await Deno.stat(join(dir, RUN_FILE)).then(() => true, () => false);
    const hasJournal = await Deno.stat(join(dir, JOURNAL_FILE)).then(() => true, () => false);
    if (hasJournal && !hasRun) {
      throw new ForaError("io", `--out ${dir} has ${JOURNAL_FILE} but no ${RUN_FILE}: the folder is damaged; choose a new --out folder`);
    }
    return lock;
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/**
 * -N as run records and run_start's flags have always held it: a schedule runs as -N 1, and
 * the dynamic policy (which refuses -N) leaves it at its default.
 */
function recordedInterval(policy: CachePolicy): number {
  return intervalOf(policy) ?? (policy.kind === "schedule" ? 1 : POLICY_DEFAULTS.interval);
}

async function openForSampling(opts: SampleOptions): Promise<Generator> {
  const gen = await openGenerator(opts);
  if (!gen.canDecode) {
    await gen.release();
    const C = gen.latentShape(1)[1];
    throw new ForaError("usage", `${opts.model} has no VAE and ${C}-channel latents, so it cannot produce images to sample`);
  }
  return gen;
}

/** Writes a batch's PNGs, then its .npz, then its journal line; returns the record. */
async function saveBatch(
  dir: string,
  run: RunRecord,
  range: { first: number; count: number },
  classes: number[],
  images: Image[],
): Promise<BatchRecord> {
  const { num } = run.settings;
  const { width: W, height: H, channels: C } = images[0];
  let png: FileCheck[] | null = null;
  if (run.png) {
    png = [];
    for (let b = 0; b < images.length; b++) {
      const im = images[b];
      const bytes = fastPng.encode({ width: im.width, height: im.height, channels: im.channels, depth: 8, data: im.data });
      await writeBytesAtomic(join(dir, PNG_DIR, pngName(range.first + b, num)), "PNG image", bytes);
      png.push({ bytes: bytes.length, sha256: sha256Hex(bytes) });
    }
  }
  const path = join(dir, npzName(range.first, range.count, num));
  const labels = new BigInt64Array(classes.map(BigInt));
  await writeAtomicWith(path, ".npz batch", async (file) => {
    const w = npzWriter(file);
    await w.begin("arr_0", "|u1", [range.count, H, W, C]);
    for (const im of images) await w.write(im.data);
    await w.begin("arr_1", "<i8", [range.count]);
    await w.write(new Uint8Array(labels.buffer));
    await w.finish();
  });
  // Hashed as written to disk (batches are small): what a resumed run and merge will check.
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ForaError("io", `${path}: cannot read back the batch just written: ${ioReason(e)}`);
  }
  const rec: BatchRecord = {
    first: range.first,
    count: range.count,
    npz: { bytes: bytes.length, sha256: sha256Hex(bytes) },
    shape: [range.count, H, W, C],
    classes,
    images: images.map((im) => sha256Hex(im.data)),
    png,
  };
  await appendJournal(dir, rec);
  return rec;
}

function flagsOf(opts: SampleOptions): { [k: string]: JsonValue } {
  return {
    model: opts.model,
    num: opts.num,
    classes: opts.classes === "uniform" ? "uniform" : opts.classes,
    batch: opts.batch,
    sampler: opts.sampler,
    steps: opts.steps,
    cfg: opts.cfg,
    cfg_channels: opts.cfgChannels,
    seed: opts.seed,
    cache_interval: recordedInterval(opts.policy),
    shard: formatShard(opts.shard),
    out: opts.out,
    png: opts.png,
    precision: opts.precision,
    device: opts.device,
  };
}
