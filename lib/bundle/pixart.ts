/**
 * PixArt-alpha and PixArt-Sigma bundles: what `fora convert` reads from a diffusers PixArt
 * pipeline folder (`transformer/`, `text_encoder/`, `tokenizer/`, `vae/`, `scheduler/`,
 * `model_index.json`) and the manifest it writes (architecture "pixart"). The pipeline class
 * fixes the caption length (PixArtSigmaPipeline 300 tokens, PixArtAlphaPipeline 120); the VAE's
 * config its scaling factor and, for the 1024-MS micro-conditions, the pixels per latent.
 *
 *   manifest.json
 *   pixart-text.{fp32,fp16}.onnx                         caption projection + every block's K/V
 *   pixart-{full,reuse,full-xr,reuse-xr,blocks}-{cfg,plain}.{fp32,fp16}.onnx
 *   t5-encoder.{fp32,fp16}.onnx                           the T5 v1.1 encoder
 *   vae-decoder.{fp32,fp16}.onnx
 *   tokenizer/{spiece.model,tokenizer.json} (+ tokenizer_config.json)   copied, whichever exist
 *   weights/{pixart,t5,vae}/*.safetensors                 hard-linked (or copied), never rewritten
 *
 * The unconditional input of classifier-free guidance is recorded in the manifest: the
 * learned null caption where the transformer's weights carry it (original checkpoints, read
 * from weights/pixart at run time), T5("") with its own length otherwise (diffusers).
 */
import { readJson } from "./source.ts";
import { join, relative } from "node:path";
import { ForaError } from "../errors.ts";
import type { ComputeType } from "../onnx/builder.ts";
import { writeModel } from "../onnx/serialize.ts";
import { type Checkpoint, loadCheckpoint } from "../weights/checkpoint.ts";
import { weightSource } from "../weights/source.ts";
import { parseVaeConfig, type VaeConfig } from "../models/vae/config.ts";
import { buildVaeDecoderGraph } from "../models/vae/graph.ts";
import { parseT5Config, type T5Config } from "../models/t5/config.ts";
import { buildT5EncoderGraph } from "../models/t5/graph.ts";
import {
  parsePixartDiffusersConfig,
  PIXART_FREQ_DIVISOR,
  PIXART_MAX_TOKENS,
  PIXART_NORM_EPS,
  PIXART_SIGMA_MAX_TOKENS,
  type PixartConfig,
  type PixartNaming,
} from "../models/pixart/config.ts";
import { numTokens, outChannels } from "../models/patch_grid.ts";
import { buildPixartGraphs, DEFAULT_VAE_SCALE_FACTOR, PIXART_STEP_KINDS, type PixartGraphKind } from "../models/pixart/graphs.ts";
import { detectPixartNaming, loadPixartWeights, refuseUnsupportedTensors } from "../models/pixart/weights.ts";
import { upscaleFactor } from "../models/vae/config.ts";
import { loadT5Tokenizer, SPIECE_FILE, TOKENIZER_JSON_FILE } from "../text/tokenizer.ts";
import {
  type AttentionKind,
  BUNDLE_FORMAT,
  checkFiles,
  checkManifest,
  type FileEntry,
  FLOAT_PRECISIONS,
  type FloatPrecision,
  type Guidance,
  GUIDANCES,
  isSafeRelativePath,
  type Manifest,
  readManifestJson,
  type VaeGraphEntry,
  vaeGraphFile,
  type WeightsEntry,
} from "./manifest.ts";
import { FORA_VERSION } from "./version.ts";
import { PIXART_DDIM_DEFAULT, readPipelineScheduler, schedulerSchema } from "./scheduler_config.ts";
import type { DiffusersDdimConfig } from "../samplers/diffusers_schedule.ts";
import { bool, intUpTo, list, MODEL_LIMITS, obj, oneOf, posInt, positive, schemaChecker, str, transformerShapeSchema } from "./schema.ts";

export const PIXART_ARCHITECTURE = "pixart";
export const TOKENIZER_FOLDER = "tokenizer";

export type Unconditional = "null-caption" | "empty-prompt";
export const PIXART_FAMILIES = ["alpha", "sigma"] as const;
export type PixartFamily = typeof PIXART_FAMILIES[number];
/** Bounds on a manifest's values, with room to spare: the largest published scale is 4 (Sigma 2K), every published VAE's factor 8. */
const MAX_INTERPOLATION_SCALE = 64;
const MAX_VAE_SCALE_FACTOR = 64;

export interface PixartGraphEntry {
  file: string;
  kind: PixartGraphKind;
  /** null for the text graph (the same with and without guidance). */
  guidance: Guidance | null;
  precision: FloatPrecision;
  attention: AttentionKind;
}

export interface PixartManifest {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  foraVersion: string;
  architecture: "pixart";
  source: { layout: "diffusers"; path: string };
  space: "latent";
  pixart: {
    naming: PixartNaming;
    config: PixartConfig;
    conventions: {
      timestepFreqDim: number;
      freqDivisor: number;
      normEps: number;
      outChannels: number;
      tokens: number;
      /** Caption length of the tokenizer call (padding and truncation). */
      maxTokens: number;
      /** The unconditional caption of classifier-free guidance. */
      unconditional: Unconditional;
      /** PixArt-alpha or PixArt-Sigma (from the pipeline class). */
      family: PixartFamily;
      /** Pixels per latent pixel: the micro-conditions' resolution is the latent size times this. */
      vaeScaleFactor: number;
    };
    weights: WeightsEntry;
    graphs: PixartGraphEntry[];
    /** The pipeline's scheduler config as diffusers' DDIMScheduler reads it: what `--sampler ddim` follows. */
    scheduler: DiffusersDdimConfig;
  };
  textEncoder: {
    config: T5Config;
    weights: WeightsEntry;
    graphs: { file: string; precision: FloatPrecision }[];
    /** Bundle folder holding spiece.model and/or tokenizer.json. */
    tokenizer: string;
  };
  vae: null | { config: VaeConfig; weights: WeightsEntry; graphs: VaeGraphEntry[] };
  files: FileEntry[];
}

export interface PixartSource {
  root: string;
  family: PixartFamily;
  transformer: { config: PixartConfig; checkpoint: Checkpoint };
  textEncoder: { config: T5Config; checkpoint: Checkpoint; dir: string };
  tokenizerDir: string;
  vae?: { config: VaeConfig; checkpoint: Checkpoint };
  /** Absent (original checkpoints): PixArt's published config. */
  scheduler?: DiffusersDdimConfig;
}

export function pixartGraphFile(kind: PixartGraphKind, guidance: Guidance | null, precision: FloatPrecision): string {
  return kind === "text" ? `pixart-text.${precision}.onnx` : `pixart-${kind}-${guidance}.${precision}.onnx`;
}

export function t5GraphFile(precision: FloatPrecision): string {
  return `t5-encoder.${precision}.onnx`;
}

/** Whether `root` holds a diffusers PixArt pipeline (by model_index.json or the transformer's config). */
export async function isPixartPipeline(root: string): Promise<boolean> {
  const index = await readJsonOr(join(root, "model_index.json"));
  if (typeof index?._class_name === "string" && /pixart/i.test(index._class_name)) return true;
  const cfg = await readJsonOr(join(root, "transformer", "config.json"));
  return cfg?.norm_type === "ada_norm_single";
}

export async function readPixartSource(root: string): Promise<PixartSource> {
  const need = async (sub: string, what: string) => {
    const dir = join(root, sub);
    if (!await Deno.stat(dir).then((s) => s.isDirectory, () => false)) {
      throw new ForaError("bundle", `${root}: PixArt pipeline without a ${sub}/ folder (${what})`);
    }
    return dir;
  };
  const trDir = await need("transformer", "the PixArt transformer");
  const trCfgPath = join(trDir, "config.json");
  const family: PixartFamily = (await readJsonOr(join(root, "model_index.json")))?._class_name === "PixArtSigmaPipeline"
    ? "sigma"
    : "alpha";
  let config = parsePixartDiffusersConfig(await readJson(trCfgPath), trCfgPath);
  const trCkpt = await loadCheckpoint(trDir);
  const naming = detectPixartNaming(trCkpt.tensors.keys());
  if (!naming) throw new ForaError("weights", `${trDir}: no PixArt tensors found (expected "adaln_single.*" or "t_block.*" names)`);
  refuseUnsupportedTensors(trCkpt.tensors.keys(), trDir);
  config = { ...config, naming, maxTokens: family === "sigma" ? PIXART_SIGMA_MAX_TOKENS : PIXART_MAX_TOKENS };
  const teDir = await need("text_encoder", "the T5 encoder");
  const teCfgPath = join(teDir, "config.json");
  const t5 = parseT5Config(await readJson(teCfgPath), teCfgPath);
  if (t5.dModel !== config.captionChannels) {
    throw new ForaError(
      "bundle",
      `${teCfgPath}: d_model ${t5.dModel} does not match the transformer's caption_channels ${config.captionChannels}`,
    );
  }
  const tokDir = await need("tokenizer", "the T5 tokenizer");
  await loadT5Tokenizer(tokDir); // fails early when neither spiece.model nor tokenizer.json reads
  let vae: PixartSource["vae"];
  const vaeDir = join(root, "vae");
  if (await Deno.stat(vaeDir).then((s) => s.isDirectory, () => false)) {
    const p = join(vaeDir, "config.json");
    const vc = parseVaeConfig(await readJson(p), p);
    if (vc.latentChannels !== config.inChannels) {
      throw new ForaError(
        "bundle",
        `${p}: latent_channels ${vc.latentChannels} does not match the transformer's in_channels ${config.inChannels}`,
      );
    }
    vae = { config: vc, checkpoint: await loadCheckpoint(vaeDir) };
  }
  return {
    root,
    family,
    transformer: { config, checkpoint: trCkpt },
    textEncoder: { config: t5, checkpoint: await loadCheckpoint(teDir), dir: teDir },
    tokenizerDir: tokDir,
    vae,
    scheduler: await readPipelineScheduler(root),
  };
}

export function describePixartSource(s: PixartSource): string {
  const c = s.transformer.config, t = s.textEncoder.config;
  return `reading ${s.root}: PixArt-${s.family} pipeline (${c.naming} weights), depth ${c.depth}, hidden ${c.hiddenSize}, ` +
    `interpolation scale ${c.interpolationScale}${c.microConditions ? ", micro-conditions" : ""}, captions ${c.maxTokens} tokens, ` +
    `T5 encoder ${t.numLayers} layers x ${t.dModel}, ${s.vae ? `with VAE (latents / ${s.vae.config.scalingFactor})` : "no VAE"}`;
}

/** The bundle-writing helpers of convert.ts, passed in (they place and hash files). */
export interface BundleWriter {
  placeWeights(ckpt: Checkpoint, work: string, folder: string): Promise<Map<string, string>>;
  weightsEntry(ckpt: Checkpoint, placed: Map<string, string>): Promise<WeightsEntry>;
  listFiles(root: string): Promise<FileEntry[]>;
}

const COMPUTE_TYPE: Record<FloatPrecision, ComputeType> = { fp32: "float32", fp16: "float16" };

export async function buildPixartBundle(
  source: PixartSource,
  work: string,
  precisions: FloatPrecision[],
  io: BundleWriter,
  log: (line: string) => void,
): Promise<PixartManifest> {
  const cfg = source.transformer.config;
  const trFiles = await io.placeWeights(source.transformer.checkpoint, work, "weights/pixart");
  const teFiles = await io.placeWeights(source.textEncoder.checkpoint, work, "weights/t5");
  const vaeFiles = source.vae ? await io.placeWeights(source.vae.checkpoint, work, "weights/vae") : undefined;
  const locate = (placed: Map<string, string>) => (file: string) => {
    const rel = placed.get(file);
    if (rel === undefined) throw new Error(`internal: ${file} was not placed in the bundle`);
    return rel;
  };
  const trSrc = weightSource(source.transformer.checkpoint, locate(trFiles));
  const unconditional: Unconditional = loadPixartWeights(trSrc, cfg).nullCaption ? "null-caption" : "empty-prompt";
  // diffusers' pipelines: 2^(VAE levels - 1), or 8 without a VAE
  const vaeScaleFactor = source.vae ? upscaleFactor(source.vae.config) : DEFAULT_VAE_SCALE_FACTOR;

  const graphs: PixartGraphEntry[] = [];
  for (const precision of precisions) {
    const attention: AttentionKind = precision === "fp16" ? "fused" : "portable";
    for (const guidance of GUIDANCES) {
      const built = buildPixartGraphs(trSrc, cfg, {
        computeType: COMPUTE_TYPE[precision],
        cfg: guidance === "cfg",
        attention,
        vaeScaleFactor,
      });
      const kinds: PixartGraphKind[] = guidance === "cfg" ? ["text", ...PIXART_STEP_KINDS] : [...PIXART_STEP_KINDS];
      for (const kind of kinds) {
        const g = kind === "text" ? null : guidance;
        const file = pixartGraphFile(kind, g, precision);
        await writeModel(join(work, file), built[kind], `fora ${FORA_VERSION}: PixArt ${kind}${g ? `, ${g}` : ""}, ${precision}`);
        graphs.push({ file, kind, guidance: g, precision, attention });
        log(`graph: ${file}`);
      }
    }
  }

  const teSrc = weightSource(source.textEncoder.checkpoint, locate(teFiles));
  const teGraphs: PixartManifest["textEncoder"]["graphs"] = [];
  for (const precision of precisions) {
    const file = t5GraphFile(precision);
    await writeModel(
      join(work, file),
      buildT5EncoderGraph(teSrc, source.textEncoder.config, COMPUTE_TYPE[precision]),
      `fora ${FORA_VERSION}: T5 encoder, ${precision}`,
    );
    teGraphs.push({ file, precision });
    log(`graph: ${file}`);
  }

  await Deno.mkdir(join(work, TOKENIZER_FOLDER));
  // loadT5Tokenizer has read at least one of the two tokenizer files.
  for (const name of [SPIECE_FILE, TOKENIZER_JSON_FILE, "tokenizer_config.json", "special_tokens_map.json"]) {
    await Deno.copyFile(join(source.tokenizerDir, name), join(work, TOKENIZER_FOLDER, name)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  let vae: PixartManifest["vae"] = null;
  if (source.vae && vaeFiles) {
    const vaeSrc = weightSource(source.vae.checkpoint, locate(vaeFiles));
    const latentSize: [number, number] = [cfg.inputSize, cfg.inputSize];
    const vgraphs: VaeGraphEntry[] = [];
    for (const precision of precisions) {
      const file = vaeGraphFile(precision);
      await writeModel(
        join(work, file),
        buildVaeDecoderGraph(vaeSrc, source.vae.config, COMPUTE_TYPE[precision], { height: latentSize[0], width: latentSize[1] }),
        `fora ${FORA_VERSION}: VAE decoder, ${precision}`,
      );
      vgraphs.push({ file, precision, latentSize });
      log(`graph: ${file}`);
    }
    vae = { config: source.vae.config, weights: await io.weightsEntry(source.vae.checkpoint, vaeFiles), graphs: vgraphs };
  }

  log("hashing files (sha256)");
  return {
    format: BUNDLE_FORMAT,
    formatVersion: 1,
    foraVersion: FORA_VERSION,
    architecture: "pixart",
    source: { layout: "diffusers", path: relative(work, source.root) }, // as convert.ts records it
    space: "latent",
    pixart: {
      naming: cfg.naming,
      config: cfg,
      conventions: {
        timestepFreqDim: 256,
        freqDivisor: PIXART_FREQ_DIVISOR,
        normEps: PIXART_NORM_EPS,
        outChannels: outChannels(cfg),
        tokens: numTokens(cfg),
        maxTokens: cfg.maxTokens,
        unconditional,
        family: source.family,
        vaeScaleFactor,
      },
      weights: await io.weightsEntry(source.transformer.checkpoint, trFiles),
      graphs,
      scheduler: source.scheduler ?? PIXART_DDIM_DEFAULT,
    },
    textEncoder: {
      config: source.textEncoder.config,
      weights: await io.weightsEntry(source.textEncoder.checkpoint, teFiles),
      graphs: teGraphs,
      tokenizer: TOKENIZER_FOLDER,
    },
    vae,
    files: await io.listFiles(work),
  };
}

/** Absolute path of the PixArt graph with these properties, or a ForaError naming what the bundle has. */
export function pixartGraphPath(
  dir: string,
  m: PixartManifest,
  want: { kind: PixartGraphKind; guidance: Guidance; precision: FloatPrecision },
): string {
  const g = m.pixart.graphs.find((e) =>
    e.kind === want.kind && e.precision === want.precision && (e.kind === "text" || e.guidance === want.guidance)
  );
  if (!g) {
    throw new ForaError(
      "bundle",
      `${dir}: bundle has no ${want.kind}/${want.guidance}/${want.precision} PixArt graph (it has ${
        m.pixart.graphs.map((e) => e.file).join(", ")
      }); re-run fora convert`,
    );
  }
  return join(dir, g.file);
}

export function t5GraphPath(dir: string, m: PixartManifest, precision: FloatPrecision): string {
  const g = m.textEncoder.graphs.find((e) => e.precision === precision);
  if (!g) throw new ForaError("bundle", `${dir}: bundle has no ${precision} T5 encoder graph; re-run fora convert`);
  return join(dir, g.file);
}

const listedFiles = () => obj({ files: list(str()) });

/** The parts of a PixArt manifest a reader relies on (the file table and the header are checked by readAnyManifest). */
const PIXART_SCHEMA = obj({
  pixart: obj({
    config: obj({
      ...transformerShapeSchema(),
      captionChannels: posInt(MODEL_LIMITS.captionChannels),
      maxTokens: posInt(MODEL_LIMITS.maxTokens),
      interpolationScale: positive(MAX_INTERPOLATION_SCALE),
      microConditions: bool(),
    }, { optional: ["interpolationScale", "microConditions"] }),
    conventions: obj({
      unconditional: oneOf(["null-caption", "empty-prompt"]),
      family: oneOf(PIXART_FAMILIES),
      vaeScaleFactor: intUpTo(MAX_VAE_SCALE_FACTOR),
    }, { optional: ["family", "vaeScaleFactor"] }),
    weights: listedFiles(),
    graphs: list(obj({ file: str(), kind: oneOf(["text", ...PIXART_STEP_KINDS]), precision: oneOf(FLOAT_PRECISIONS) })),
    scheduler: schedulerSchema(),
  }, { optional: ["scheduler"] }),
  textEncoder: obj({ config: obj({}), weights: listedFiles(), graphs: list(obj({ file: str() })), tokenizer: str() }),
  vae: obj({ graphs: list(obj({ file: str() })) }, { nullable: true }),
});
const checkPixartStructure = schemaChecker<PixartManifest>(PIXART_SCHEMA);

/**
 * Manifests written before PixArt-Sigma and the 1024-MS model lack their fields; those
 * bundles are PixArt-alpha 256/512 ones: an unscaled position table, no micro-conditions,
 * and the VAE's own factor (8 without a VAE, as diffusers' pipelines assume). Those written
 * before the scheduler was recorded take PixArt's published one.
 */
function withPixartDefaults(m: PixartManifest): PixartManifest {
  const c = m.pixart.config, conv = m.pixart.conventions;
  const blocks = (m.vae?.config as { blockOutChannels?: unknown } | undefined)?.blockOutChannels;
  const vaeFactor = Array.isArray(blocks) && blocks.length > 0 ? upscaleFactor(m.vae!.config) : DEFAULT_VAE_SCALE_FACTOR;
  c.interpolationScale ??= 1;
  c.microConditions ??= false;
  conv.family ??= "alpha";
  conv.vaeScaleFactor ??= vaeFactor;
  m.pixart.scheduler ??= PIXART_DDIM_DEFAULT;
  return m;
}

/**
 * Check of a PixArt manifest: its structure by PIXART_SCHEMA; `listed` are the paths
 * `files` lists, which every referenced file must be among.
 */
export function checkPixartManifest(json: Record<string, unknown>, where: string, listed: Set<string>): PixartManifest {
  const fail = (key: string, msg: string): never => {
    throw new ForaError("bundle", `${where}: "${key}" ${msg}`);
  };
  const m = withPixartDefaults(checkPixartStructure(json, fail));
  if (m.pixart.config.microConditions && m.pixart.config.hiddenSize % 3 !== 0) {
    fail("pixart.config.microConditions", "needs a hiddenSize divisible by 3 (one third per size embedder)");
  }
  const file = (v: string, key: string) => {
    if (!listed.has(v)) fail(key, `must name a file that "files" lists`);
  };
  m.pixart.graphs.forEach((g, i) => file(g.file, `pixart.graphs[${i}].file`));
  m.textEncoder.graphs.forEach((g, i) => file(g.file, `textEncoder.graphs[${i}].file`));
  if (![SPIECE_FILE, TOKENIZER_JSON_FILE].some((f) => listed.has(`${m.textEncoder.tokenizer}/${f}`))) {
    fail("textEncoder.tokenizer", `must name a folder whose ${SPIECE_FILE} or ${TOKENIZER_JSON_FILE} "files" lists`);
  }
  for (const w of [m.pixart.weights, m.textEncoder.weights]) w.files.forEach((f, i) => file(f, `weights.files[${i}]`));
  m.vae?.graphs.forEach((g, i) => file(g.file, `vae.graphs[${i}].file`));
  return m;
}

async function readJsonOr(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a bundle's manifest whatever its architecture: DiT (checkManifest) or PixArt. */
export async function readAnyManifest(dir: string): Promise<Manifest | PixartManifest> {
  const { root, path, json } = await readManifestJson(dir);
  const o = typeof json === "object" && json !== null && !Array.isArray(json) ? json as Record<string, unknown> : {};
  if (o.format !== BUNDLE_FORMAT || o.architecture !== PIXART_ARCHITECTURE) {
    const m = checkManifest(json, path);
    await checkFiles(root, m);
    return m;
  }
  if (!Array.isArray(o.files)) throw new ForaError("bundle", `${path}: "files" must be a list`);
  const files = o.files as FileEntry[];
  for (const f of files) {
    if (typeof f?.path !== "string" || !isSafeRelativePath(f.path) || !Number.isSafeInteger(f.size)) {
      throw new ForaError(
        "bundle",
        `${path}: "files" has an entry that is not {path, size, sha256} with a relative path inside the bundle`,
      );
    }
  }
  const m = checkPixartManifest(o, path, new Set(files.map((f) => f.path)));
  await checkFiles(root, m);
  return m;
}

/** A PixArt bundle's manifest, or a usage error naming what the bundle is instead. */
export async function readPixartManifest(dir: string): Promise<PixartManifest> {
  const m = await readAnyManifest(dir);
  if (m.architecture !== "pixart") throw new ForaError("usage", `${dir}: is a ${m.architecture} bundle, not PixArt`);
  return m;
}
