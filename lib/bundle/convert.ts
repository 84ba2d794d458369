/**
 * `fora convert`: a model folder in, a bundle folder out (layout in manifest.ts).
 *
 * Crash safety: everything is built in a hidden temporary folder next to DST
 * (`.NAME.converting-PID-XXXX`, work_folder.ts), the manifest is written last (temp file +
 * rename), and the folder is renamed to DST only when complete. A failed convert, or one
 * stopped by SIGINT / SIGTERM, removes that folder and never leaves anything at DST; one
 * killed outright leaves the folder, which the next convert of the same DST removes.
 */
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { ForaError, interrupted, isForaError } from "../errors.ts";
import { signalName } from "../events/steps.ts";
import { writeModel } from "../onnx/serialize.ts";
import type { ComputeType } from "../onnx/builder.ts";
import type { Checkpoint } from "../weights/checkpoint.ts";
import { weightSource } from "../weights/source.ts";
import { NORM_EPS, numTokens, outChannels, TIMESTEP_FREQ_DIM } from "../models/dit/config.ts";
import { buildDitGraphs } from "../models/dit/graphs.ts";
import { DIT_INT8_WEIGHTS_FILE, quantizeDitBlocks } from "../models/dit/int8.ts";
import { buildVaeDecoderGraph } from "../models/vae/graph.ts";
import {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  DIT_GRAPH_KINDS,
  type DitGraphEntry,
  ditGraphFile,
  type FileEntry,
  FLOAT_PRECISIONS,
  type FloatPrecision,
  floatPrecision,
  GUIDANCES,
  type Manifest,
  MANIFEST_FILE,
  type Precision,
  PRECISIONS,
  type VaeGraphEntry,
  vaeGraphFile,
  type WeightsEntry,
} from "./manifest.ts";
import { sha256File } from "./read.ts";
import { type ModelSource, readModelSource } from "./source.ts";
import { FORA_VERSION } from "./version.ts";
import { newWorkFolder } from "./work_folder.ts";
import { planTorchConversion } from "./torch_source.ts";
import { isTorchFile } from "../weights/torch.ts";
import { buildPixartBundle } from "./pixart_convert.ts";
import type { PixartManifest } from "./pixart_manifest.ts";
import { describePixartSource, isPixartPipeline, type PixartSource, readPixartSource } from "./pixart_source.ts";

export interface ConvertOptions {
  /** Replace a non-empty DST. */
  force?: boolean;
  /**
   * Copy the weight files instead of hard-linking them: the bundle then shares nothing
   * with the source folder (editing or deleting the source cannot affect it). Copying is
   * also the automatic fallback where a hard link is impossible (another filesystem).
   */
  copyWeights?: boolean;
  /**
   * Graph precisions to build; default fp32 (for the CPU EP) and fp16 (for CUDA). int8 (DiT
   * only, CPU only) adds graphs with int8 block linears and an fp32 VAE decoder.
   */
  precisions?: readonly Precision[];
  /** Progress lines (the CLI prints them to stderr). */
  log?: (line: string) => void;
  /** Aborted with "SIGINT" or "SIGTERM" as reason: stop, remove the work folder, throw `interrupted`. */
  signal?: AbortSignal;
  /** Heads of a PyTorch checkpoint's transformer whose hidden size is none of the published ones. */
  numHeads?: number;
  /** With a PixArt-alpha .pth: the T5 encoder's folder. */
  textEncoder?: string;
  /** With a .pt / .pth: the VAE's folder. */
  vae?: string;
  /** With a PixArt-alpha .pth: the trained image size in pixels, when neither pos_embed nor the file name gives it. */
  imageSize?: number;
}

type PixartResult = { manifest: PixartManifest; linked: number; copied: number };

export interface ConvertResult {
  /** Absolute path of the bundle. */
  dir: string;
  manifest: Manifest;
  /** Weight files hard-linked / copied into weights/. */
  linked: number;
  copied: number;
}

const COMPUTE_TYPE: Record<Precision, ComputeType> = { fp32: "float32", fp16: "float16", int8: "float32" };

export async function convertBundle(src: string, dst: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const precisions = checkPrecisions(opts.precisions ?? FLOAT_PRECISIONS);
  const source = await readModelSource(src);
  return await convertInto(
    source.root,
    dst,
    opts,
    describeSource(source),
    (work, log) => build(source, work, precisions, opts.copyWeights ?? false, log),
  );
}

/** `fora convert`: a DiT folder (convertBundle) or a diffusers PixArt-alpha pipeline. */
export async function convertAnyBundle(
  src: string,
  dst: string,
  opts: ConvertOptions = {},
): Promise<{ dir: string; manifest: Manifest | PixartManifest; linked: number; copied: number }> {
  const root = resolve(src);
  if (await isTorchFile(root)) return await convertTorchFile(root, dst, opts);
  const torchFlags = [["--num-heads", opts.numHeads], ["--t5", opts.textEncoder], ["--vae", opts.vae], ["--image-size", opts.imageSize]];
  for (const [flag, given] of torchFlags) {
    if (given !== undefined) {
      throw new ForaError(
        "usage",
        `${flag} applies to PyTorch checkpoint files (.pt, .pth); ${root} is a model folder, which names its parts`,
      );
    }
  }
  if (!(await isPixartPipeline(root))) return await convertBundle(src, dst, opts);
  const precisions = pixartPrecisions(checkPrecisions(opts.precisions ?? FLOAT_PRECISIONS));
  const source = await readPixartSource(root);
  return await convertInto(root, dst, opts, describePixartSource(source), (work, log) => buildPixart(source, work, precisions, opts, log));
}

/** A `.pt` / `.pth` as torch.save wrote it: read and checked whole before anything is written; the bundle gets safetensors. */
async function convertTorchFile(
  file: string,
  dst: string,
  opts: ConvertOptions,
): Promise<{ dir: string } & (Omit<ConvertResult, "dir"> | PixartResult)> {
  const precisions = checkPrecisions(opts.precisions ?? FLOAT_PRECISIONS);
  const plan = await planTorchConversion(file, opts);
  if (plan.kind === "dit") {
    return await convertInto(file, dst, opts, plan.description, async (work, log) => {
      return await build(await plan.stage(work, log), work, precisions, opts.copyWeights ?? false, log);
    });
  }
  const floats = pixartPrecisions(precisions);
  return await convertInto(file, dst, opts, plan.description, async (work, log) => {
    return await buildPixart(await plan.stage(work, log), work, floats, opts, log);
  });
}

/** PixArt graphs come in the float precisions only. */
function pixartPrecisions(precisions: Precision[]): FloatPrecision[] {
  if (precisions.includes("int8")) {
    throw new ForaError("usage", "--precision int8 is built for DiT bundles only; convert this PixArt-alpha model with fp32 and/or fp16");
  }
  return precisions.map(floatPrecision);
}

async function buildPixart(
  source: PixartSource,
  work: string,
  precisions: FloatPrecision[],
  opts: ConvertOptions,
  log: (line: string) => void,
): Promise<PixartResult> {
  const stats = { linked: 0, copied: 0 };
  const manifest = await buildPixartBundle(source, work, precisions, {
    placeWeights: (ckpt, w, folder) => placeWeights(ckpt, w, folder, opts.copyWeights ?? false, stats),
    weightsEntry,
    listFiles,
  }, log);
  await writeManifest(work, manifest);
  return { manifest, ...stats };
}

/** Builds in a hidden folder next to DST and renames it into place when complete. */
async function convertInto<T>(
  sourceRoot: string,
  dst: string,
  opts: ConvertOptions,
  description: string,
  buildIn: (work: string, log: (line: string) => void) => Promise<T>,
): Promise<{ dir: string } & T> {
  const log = opts.log ?? (() => {});
  const target = resolve(dst);
  const existing = await checkTarget(target, sourceRoot, opts.force ?? false);
  log(description);

  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true }).catch((e) => {
    throw new ForaError("io", `${parent}: cannot create folder: ${(e as Error).message}`);
  });
  const work = await newWorkFolder(parent, basename(target), log);
  // A stop request is honoured at the build's progress lines (weights placed, each graph
  // written, hashing begins), so the build has ended when its folder is removed; once the
  // folder is being moved into place (two renames), the convert finishes.
  const { signal } = opts;
  const stopOrLog = (line: string) => {
    if (signal?.aborted) throw interrupted(signalName(signal));
    log(line);
  };
  let result: T;
  try {
    try {
      result = await buildIn(work.path, stopOrLog);
      if (signal?.aborted) throw interrupted(signalName(signal));
    } catch (e) {
      await Deno.remove(work.path, { recursive: true }).catch(() => {});
      throw e;
    }
    await moveIntoPlace(work.path, target, existing, log);
  } finally {
    work.release();
  }
  log(`wrote ${target}`);
  return { dir: target, ...result };
}

function checkPrecisions(list: readonly Precision[]): Precision[] {
  const out = [...new Set(list)];
  for (const p of out) {
    if (!PRECISIONS.includes(p)) {
      throw new ForaError("usage", `unknown precision ${JSON.stringify(p)}; use one or more of ${PRECISIONS.join(", ")}`);
    }
  }
  if (out.length === 0) throw new ForaError("usage", `no precision chosen; use one or more of ${PRECISIONS.join(", ")}`);
  return PRECISIONS.filter((p) => out.includes(p));
}

/** Whether DST exists (as a folder we may replace); refuses anything else. */
async function checkTarget(target: string, sourceRoot: string, force: boolean): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(target);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new ForaError("io", `${target}: cannot read: ${(e as Error).message}`);
  }
  if (!info.isDirectory) {
    throw new ForaError("usage", `${target}: exists and is not a folder; choose another destination`);
  }
  const rel = relative(target, sourceRoot);
  if (rel === "" || !(rel === ".." || rel.startsWith(".." + sep))) {
    throw new ForaError("usage", `${target}: the destination holds the source model; choose another destination`);
  }
  let empty = true;
  for await (const _ of Deno.readDir(target)) {
    empty = false;
    break;
  }
  if (!empty && !force) {
    throw new ForaError("usage", `${target}: exists and is not empty; choose a new folder, or pass --force to replace it`);
  }
  return true;
}

function describeSource(s: ModelSource): string {
  const c = s.dit.config;
  const layout = s.layout === "diffusers" ? "diffusers pipeline" : "original DiT checkpoint";
  const vae = s.vae ? "with VAE" : "no VAE";
  return `reading ${s.root}: ${layout}, depth ${c.depth}, hidden ${c.hiddenSize}, ${s.space} space, ${vae}`;
}

async function build(
  source: ModelSource,
  work: string,
  precisions: Precision[],
  copy: boolean,
  log: (line: string) => void,
): Promise<Omit<ConvertResult, "dir">> {
  const stats = { linked: 0, copied: 0 };
  const ditFiles = await placeWeights(source.dit.checkpoint, work, "weights/dit", copy, stats);
  const vaeFiles = source.vae ? await placeWeights(source.vae.checkpoint, work, "weights/vae", copy, stats) : undefined;
  const howPlaced = stats.copied === 0
    ? "hard-linked"
    : stats.linked > 0
    ? "hard-linked or copied"
    : copy
    ? "copied"
    : "copied (hard links not possible here)";
  if (stats.linked + stats.copied > 0) log(`weights: ${howPlaced} ${stats.linked + stats.copied} file(s) into weights/`);

  const cfg = source.dit.config;
  const ditSrc = weightSource(source.dit.checkpoint, locator(ditFiles));
  const ditGraphs: DitGraphEntry[] = [];
  const int8 = precisions.includes("int8") ? await quantizeDitBlocks(work, ditSrc, cfg) : undefined;
  if (int8) log(`weights: ${int8.size} block linears quantized to int8 into ${DIT_INT8_WEIGHTS_FILE}`);
  for (const precision of precisions) {
    // fp32 and int8 are portable variants (CPU EP); fp16 uses the fused attention CUDA maps onto flash attention.
    const attention = precision === "fp16" ? "fused" : "portable";
    for (const guidance of GUIDANCES) {
      const graphs = buildDitGraphs(ditSrc, cfg, {
        computeType: COMPUTE_TYPE[precision],
        cfg: guidance === "cfg",
        attention,
        int8: precision === "int8" ? int8 : undefined,
      });
      for (const kind of DIT_GRAPH_KINDS) {
        const file = ditGraphFile(kind, guidance, precision);
        await writeModel(join(work, file), graphs[kind], `fora ${FORA_VERSION}: DiT ${kind} step, ${guidance}, ${precision}`);
        ditGraphs.push({ file, kind, guidance, precision, attention });
        log(`graph: ${file}`);
      }
    }
  }

  let vae: Manifest["vae"] = null;
  if (source.vae && vaeFiles) {
    const vaeSrc = weightSource(source.vae.checkpoint, locator(vaeFiles));
    const latentSize: [number, number] = [cfg.inputSize, cfg.inputSize];
    const graphs: VaeGraphEntry[] = [];
    for (const precision of new Set(precisions.map(floatPrecision))) {
      const file = vaeGraphFile(precision);
      const graph = buildVaeDecoderGraph(vaeSrc, source.vae.config, COMPUTE_TYPE[precision], {
        height: latentSize[0],
        width: latentSize[1],
      });
      await writeModel(join(work, file), graph, `fora ${FORA_VERSION}: VAE decoder, ${precision}`);
      graphs.push({ file, precision, latentSize });
      log(`graph: ${file}`);
    }
    vae = { config: source.vae.config, weights: await weightsEntry(source.vae.checkpoint, vaeFiles), graphs };
  }

  log("hashing files (sha256)");
  const files = await listFiles(work);
  const manifest: Manifest = {
    format: BUNDLE_FORMAT,
    formatVersion: BUNDLE_FORMAT_VERSION,
    foraVersion: FORA_VERSION,
    architecture: "dit",
    // Relative to the bundle (work is DST's sibling): a bundle names no folder of the machine that made it.
    source: { layout: source.layout, path: relative(work, source.root) },
    space: source.space,
    dit: {
      classNames: source.classNames,
      naming: cfg.naming,
      config: cfg,
      conventions: {
        timestepFreqDim: TIMESTEP_FREQ_DIM,
        freqDivisor: cfg.freqDivisor,
        mlpNormEps: cfg.mlpNormEps,
        normEps: NORM_EPS,
        nullClass: cfg.numClasses,
        outChannels: outChannels(cfg),
        tokens: numTokens(cfg),
      },
      weights: await weightsEntry(source.dit.checkpoint, ditFiles),
      graphs: ditGraphs,
    },
    vae,
    files,
  };
  await writeManifest(work, manifest);
  return { manifest, ...stats };
}

/** Absolute checkpoint file -> bundle-relative path. */
type Placement = Map<string, string>;

function locator(placed: Placement): (file: string) => string {
  return (file) => {
    const rel = placed.get(file);
    if (rel === undefined) throw new Error(`internal: ${file} was not placed in the bundle`);
    return rel;
  };
}

async function placeWeights(
  ckpt: Checkpoint,
  work: string,
  folder: string,
  copy: boolean,
  stats: { linked: number; copied: number },
): Promise<Placement> {
  const dir = join(work, ...folder.split("/"));
  await Deno.mkdir(dir, { recursive: true });
  const placed: Placement = new Map();
  for (const file of ckpt.files) {
    const name = basename(file);
    const to = join(dir, name);
    // Already written into the bundle (weights converted from a PyTorch checkpoint).
    if (file === to) {
      placed.set(file, `${folder}/${name}`);
      continue;
    }
    try {
      if (copy) throw new Error("copy requested");
      // A hard link costs no space and, unlike a symlink, ONNX Runtime accepts it.
      await Deno.link(file, to);
      stats.linked++;
    } catch {
      try {
        await Deno.copyFile(file, to);
        stats.copied++;
      } catch (e) {
        throw new ForaError("io", `${file}: cannot link or copy into ${dir}: ${(e as Error).message}`);
      }
    }
    placed.set(file, `${folder}/${name}`);
  }
  return placed;
}

async function weightsEntry(ckpt: Checkpoint, placed: Placement): Promise<WeightsEntry> {
  const dtypes = new Set<string>();
  let parameters = 0;
  for (const t of ckpt.tensors.values()) {
    dtypes.add(t.dtype);
    parameters += t.shape.reduce((a, b) => a * b, 1);
  }
  let bytes = 0;
  for (const file of ckpt.files) bytes += (await Deno.stat(file)).size;
  return { files: [...placed.values()], dtypes: [...dtypes].sort(), tensors: ckpt.tensors.size, parameters, bytes };
}

async function listFiles(root: string): Promise<FileEntry[]> {
  const paths: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    for await (const e of Deno.readDir(dir)) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory) await walk(join(dir, e.name), rel);
      else if (e.isFile) paths.push(rel);
    }
  };
  await walk(root, "");
  paths.sort();
  const files: FileEntry[] = [];
  for (const p of paths) {
    const abs = join(root, ...p.split("/"));
    files.push({ path: p, size: (await Deno.stat(abs)).size, sha256: await sha256File(abs) });
  }
  return files;
}

async function writeManifest(work: string, manifest: Manifest | PixartManifest): Promise<void> {
  const path = join(work, MANIFEST_FILE);
  const tmp = `${path}.tmp-${randomTag()}`;
  await Deno.writeTextFile(tmp, JSON.stringify(manifest, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

/** Swaps the finished folder in; an existing DST (empty, or replaced with --force) is removed last. */
async function moveIntoPlace(work: string, target: string, existing: boolean, log: (line: string) => void): Promise<void> {
  let old: string | undefined;
  try {
    if (existing) {
      old = join(dirname(target), `.${basename(target)}.replaced-${randomTag()}`);
      await Deno.rename(target, old);
    }
    await Deno.rename(work, target);
  } catch (e) {
    if (old) await Deno.rename(old, target).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
    if (isForaError(e)) throw e;
    throw new ForaError("io", `${target}: cannot move the finished bundle into place: ${(e as Error).message}`);
  }
  if (old) {
    await Deno.remove(old, { recursive: true }).catch((e) => {
      log(`warning: could not remove the replaced folder ${old}: ${(e as Error).message}`);
    });
  }
}

function randomTag(): string {
  return crypto.randomUUID().slice(0, 8);
}
