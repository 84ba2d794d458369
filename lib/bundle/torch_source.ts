/**
 * `fora convert FILE.pt DST`: checkpoints as PyTorch saves them, with no config file.
 *
 * - DiT: the released `DiT-XL-2-256x256.pt` is `torch.save(model.state_dict())`; training
 *   checkpoints hold `{"model", "ema", "opt", "args"}`, of which the "ema" weights are used.
 * - PixArt-alpha: `PixArt-XL-2-512x512.pth` holds `{"state_dict": ...}` in PixArt's own names,
 *   converted together with a T5 folder (`--t5`: config.json, tokenizer.json, weights as
 *   safetensors or transformers' `pytorch_model-0000N-of-0000M.bin` shards with their index)
 *   and optionally a VAE folder (`--vae`, as for DiT). `PixArt-XL-2-1024-MS.pth` adds the size
 *   embedders (micro-conditions) and has no pos_embed: its image size comes from the file name
 *   or `--image-size`.
 *
 * The architecture is read off the tensor shapes, the number of heads from the published sizes
 * (or `--num-heads`). Everything that could refuse the input (the unpickler, shapes, the
 * position embedding, the folders' configs) runs before anything is written. The bundle holds
 * the pickled tensors as safetensors, written at convert time: nothing pickled is read after
 * convert.
 */
import { basename, join } from "node:path";
import { ForaError } from "../errors.ts";
import { checkTransformerShape } from "../models/config_fields.ts";
import { conventions, type DitConfig, TIMESTEP_FREQ_DIM } from "../models/dit/config.ts";
import { defaultInterpolationScale, PIXART_MAX_TOKENS, type PixartConfig } from "../models/pixart/config.ts";
import { DEFAULT_VAE_SCALE_FACTOR } from "../models/pixart/graphs.ts";
import { detectPixartNaming, refuseUnsupportedTensors } from "../models/pixart/weights.ts";
import { parseT5Config } from "../models/t5/config.ts";
import { parseVaeConfig, upscaleFactor } from "../models/vae/config.ts";
import { sinCosPositionEmbedding2d } from "../../kernels/position_embedding.ts";
import { loadT5Tokenizer } from "../text/tokenizer.ts";
import { type Checkpoint, loadCheckpoint, readWeightMap } from "../weights/checkpoint.ts";
import { bytesToFloat32, type DType, formatShape, type StreamedTensor, writeSafetensorsFrom } from "../weights/safetensors.ts";
import { isKind, type PyDict, type PyValue } from "../weights/pickle.ts";
import {
  readTorchCheckpoint,
  readTorchTensor,
  stateDictTensors,
  tensorBytes,
  type TorchCheckpoint,
  type TorchTensor,
} from "../weights/torch.ts";
import type { ModelSource } from "./source.ts";
import type { PixartSource } from "./pixart_source.ts";
import { readJson } from "./source.ts";

/** Heads of the published sizes by hidden size: DiT S, B, L, XL (PixArt-alpha is XL). */
const PRESET_HEADS: Record<number, number> = { 1152: 16, 1024: 16, 768: 12, 384: 6 };

export interface TorchStateDict {
  ckpt: TorchCheckpoint;
  tensors: Map<string, TorchTensor>;
  /** Which part of the file the weights came from, when it was not the whole file. */
  note?: string;
}

export interface TorchOptions {
  /** Heads of a transformer whose hidden size is none of the published ones. */
  numHeads?: number;
  /** PixArt: the T5 encoder's folder. */
  textEncoder?: string;
  /** The VAE's folder (diffusers AutoencoderKL: config.json and weights). */
  vae?: string;
  /** PixArt: the trained image size in pixels, for a file with no pos_embed whose name does not say it. */
  imageSize?: number;
}

/** What convert does with a PyTorch file, checked whole; `stage` writes the weights into the bundle. */
export type TorchPlan =
  | { kind: "dit"; description: string; stage(work: string, log: (line: string) => void): Promise<ModelSource> }
  | { kind: "pixart"; description: string; stage(work: string, log: (line: string) => void): Promise<PixartSource> };

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

export async function planTorchConversion(file: string, opts: TorchOptions): Promise<TorchPlan> {
  const sd = await readTorchStateDict(file);
  if (detectPixartNaming(sd.tensors.keys()) === "original") return await planPixart(file, sd, opts);
  if (opts.textEncoder !== undefined) {
    throw new ForaError("usage", `--t5 is for PixArt-alpha checkpoints; ${file} is not one (no "t_block.*" tensors)`);
  }
  if (opts.imageSize !== undefined) {
    throw new ForaError("usage", `--image-size is for PixArt-alpha checkpoints; ${file} is not one, and its pos_embed gives its size`);
  }
  const config = ditConfig(file, sd, opts);
  await checkPositionEmbedding(sd, "pos_embed", config.hiddenSize, config.inputSize / config.patchSize);
  const vae = opts.vae === undefined ? undefined : await readVaeFolder(opts.vae, config.inChannels);
  checkWeightDTypes(sd);
  return {
    kind: "dit",
    description: `reading ${file}: PyTorch DiT checkpoint, ${describeShape(config, opts)}, ${config.numClasses} classes, ` +
      (vae ? `VAE from ${opts.vae}` : "no VAE"),
    async stage(work, log) {
      if (sd.note) log(sd.note);
      const checkpoint = await stageWeights({ parts: [sd] }, work, "weights/dit", log);
      const vaeSource = vae && { config: vae.config, checkpoint: await stageWeights(vae.weights, work, "weights/vae", log) };
      return { layout: "original", root: file, space: "latent", classNames: null, dit: { config, checkpoint }, vae: vaeSource };
    },
  };
}

/**
 * The state dict inside a checkpoint: the whole object, or the `"ema"` weights of a training
 * checkpoint (as DiT's sampling scripts take them), or PixArt's `"state_dict"`, or `"model"`.
 */
export async function readTorchStateDict(path: string): Promise<TorchStateDict> {
  const ckpt = await readTorchCheckpoint(path);
  if (!isKind(ckpt.root, "dict")) fail(path, `holds a ${kindName(ckpt.root)}, not a state dict (a dict of tensors)`);
  const root = ckpt.root as PyDict;
  for (const key of ["ema", "state_dict", "model"]) {
    const part = root.entries.get(key);
    if (isKind(part, "dict")) {
      const note = key === "ema"
        ? `training checkpoint: using its "ema" weights, as DiT's sampling scripts do`
        : `using the checkpoint's "${key}" entry`;
      return { ckpt, tensors: stateDictTensors(path, part, `["${key}"]`), note };
    }
  }
  return { ckpt, tensors: stateDictTensors(path, root, "the state dict") };
}

function kindName(v: PyValue): string {
  if (v === null) return "None";
  if (typeof v !== "object") return typeof v;
  return v instanceof Uint8Array ? "bytes" : v.kind;
}

interface Shape {
  depth: number;
  hiddenSize: number;
  numHeads: number;
  patchSize: number;
  inChannels: number;
  learnSigma: boolean;
}

/** The transformer's shape from the tensors DiT and PixArt-alpha share (facebookresearch/DiT names). */
function transformerShape(path: string, sd: TorchStateDict, opts: TorchOptions): Shape {
  const [hidden, inChannels, patch, patchW] = tensorShape(path, sd, "x_embedder.proj.weight", 4);
  if (patch !== patchW) fail(path, `x_embedder.proj.weight has a ${patch}x${patchW} patch; patches are square`);
  let depth = 0;
  while (sd.tensors.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) fail(path, `no "blocks.0.attn.qkv.weight": not a DiT or PixArt-alpha state dict`);
  const out = tensorShape(path, sd, "final_layer.linear.weight", 2)[0] / (patch * patch);
  if (out !== inChannels && out !== 2 * inChannels) {
    fail(path, `final_layer.linear.weight gives ${out} output channels; expected ${inChannels} or ${2 * inChannels}`);
  }
  const numHeads = opts.numHeads ?? PRESET_HEADS[hidden];
  if (numHeads === undefined) {
    throw new ForaError(
      "usage",
      `${path}: hidden size ${hidden} is none of the published DiT sizes (1152, 1024, 768, 384), so the number of heads is unknown; ` +
        `pass --num-heads H`,
    );
  }
  return { depth, hiddenSize: hidden, numHeads, patchSize: patch, inChannels, learnSigma: out === 2 * inChannels };
}

function tensorShape(path: string, sd: TorchStateDict, name: string, rank: number): number[] {
  const t = sd.tensors.get(name);
  if (t === undefined) {
    fail(
      path,
      `no tensor ${
        JSON.stringify(name)
      }: not a state dict in facebookresearch/DiT's or PixArt's names (it holds ${sd.tensors.size} tensors)`,
    );
  }
  if (t.shape.length !== rank) fail(path, `tensor ${JSON.stringify(name)} has shape ${formatShape(t.shape)}, expected ${rank} dimensions`);
  return t.shape;
}

/** Side of the token grid from pos_embed [1, grid^2, hidden]; undefined when the file has none. */
function positionGrid(path: string, sd: TorchStateDict, hidden: number): number | undefined {
  const pos = sd.tensors.get("pos_embed");
  if (pos === undefined) return undefined;
  const tokens = pos.shape.length === 3 && pos.shape[0] === 1 && pos.shape[2] === hidden ? pos.shape[1] : -1;
  const grid = Math.round(Math.sqrt(tokens));
  if (tokens < 1 || grid * grid !== tokens) fail(path, `pos_embed has shape ${formatShape(pos.shape)}; expected [1, grid^2, ${hidden}]`);
  return grid;
}

function ditConfig(path: string, sd: TorchStateDict, opts: TorchOptions): DitConfig {
  const shape = transformerShape(path, sd, opts);
  const grid = positionGrid(path, sd, shape.hiddenSize);
  if (grid === undefined) fail(path, `no "pos_embed" tensor: fora reads the input size from it`);
  return checkTransformerShape<DitConfig>({
    ...shape,
    inputSize: grid * shape.patchSize,
    numClasses: tensorShape(path, sd, "y_embedder.embedding_table.weight", 2)[0] - 1,
    naming: "original",
    ...conventions("original"),
  }, path);
}

function describeShape(c: Shape & { inputSize: number }, opts: TorchOptions): string {
  const heads = `${c.numHeads} heads (${opts.numHeads === undefined ? "published size" : "--num-heads"})`;
  return `depth ${c.depth}, hidden ${c.hiddenSize}, ${heads}, patch ${c.patchSize}, latent ${c.inChannels}x${c.inputSize}x${c.inputSize}` +
    (c.learnSigma ? ", learned sigma" : "");
}

async function planPixart(file: string, sd: TorchStateDict, opts: TorchOptions): Promise<TorchPlan> {
  if (opts.textEncoder === undefined) {
    throw new ForaError(
      "usage",
      `${file} is a PixArt-alpha checkpoint: also pass --t5 DIR, the T5 v1.1 encoder's folder (config.json, tokenizer.json, weights)`,
    );
  }
  const shape = transformerShape(file, sd, opts);
  const vae = opts.vae === undefined ? undefined : await readVaeFolder(opts.vae, shape.inChannels);
  const size = pixartLatentSize(file, sd, shape, opts.imageSize, vae ? upscaleFactor(vae.config) : DEFAULT_VAE_SCALE_FACTOR);
  const captionChannels = tensorShape(file, sd, "y_embedder.y_proj.fc1.weight", 2)[1];
  const nullCaption = sd.tensors.get("y_embedder.y_embedding");
  const config = checkTransformerShape<PixartConfig>({
    ...shape,
    inputSize: size.latent,
    captionChannels,
    maxTokens: nullCaption?.shape.length === 2 ? nullCaption.shape[0] : PIXART_MAX_TOKENS,
    // The original files do not record the scale: PixArt's scripts pass it by image size
    // (`lewei_scale`: 1 for 256 and 512 px, 2 for 1024), as diffusers' default does by latent size.
    interpolationScale: defaultInterpolationScale(size.latent),
    microConditions: hasSizeEmbedders(file, sd, shape.hiddenSize),
    naming: "original",
  }, file);
  refuseUnsupportedTensors(sd.tensors.keys(), file);
  if (sd.tensors.has("pos_embed")) {
    await checkPositionEmbedding(sd, "pos_embed", shape.hiddenSize, size.latent / shape.patchSize, config.interpolationScale);
  }
  checkWeightDTypes(sd);

  const teDir = opts.textEncoder;
  const teCfgPath = join(teDir, "config.json");
  const t5 = parseT5Config(await readJson(teCfgPath), teCfgPath);
  if (t5.dModel !== captionChannels) {
    throw new ForaError("bundle", `${teCfgPath}: d_model ${t5.dModel} does not match the transformer's caption width ${captionChannels}`);
  }
  await loadT5Tokenizer(teDir); // fails early, with instructions, when tokenizer.json is missing
  // transformers' T5 checkpoints hold the whole encoder-decoder; PixArt needs the encoder.
  const t5Weights = await readWeightsFolder(teDir, ["pytorch_model.bin", "model.safetensors"], isEncoderTensor);
  const scaled = config.interpolationScale === 1 ? "" : `, positions / ${config.interpolationScale}`;
  return {
    kind: "pixart",
    description: `reading ${file}: PyTorch PixArt-alpha checkpoint, ${describeShape(config, opts)}, ${size.from}, ` +
      `caption width ${captionChannels}${config.microConditions ? ", micro-conditions" : ""}${scaled}; ` +
      `T5 encoder ${t5.numLayers} layers x ${t5.dModel} from ${teDir}; ${vae ? `VAE from ${opts.vae}` : "no VAE"}`,
    async stage(work, log) {
      if (sd.note) log(sd.note);
      return {
        root: file,
        family: "alpha",
        transformer: { config, checkpoint: await stageWeights({ parts: [sd] }, work, "weights/pixart", log) },
        textEncoder: { config: t5, checkpoint: await stageWeights(t5Weights, work, "weights/t5", log), dir: teDir },
        tokenizerDir: teDir,
        vae: vae && { config: vae.config, checkpoint: await stageWeights(vae.weights, work, "weights/vae", log) },
      };
    },
  };
}

function isEncoderTensor(name: string): boolean {
  return name.startsWith("encoder.") || name === "shared.weight";
}

/**
 * The trained latent side and where it came from: pos_embed when the file has one (the 256 and
 * 512 files), else the image size (`--image-size`, or the file's name: PixArt-XL-2-1024-MS.pth has
 * no pos_embed) over the VAE's factor. A `--image-size` must agree with a pos_embed.
 */
function pixartLatentSize(
  file: string,
  sd: TorchStateDict,
  shape: Shape,
  imageSize: number | undefined,
  vaeFactor: number,
): { latent: number; from: string } {
  const grid = positionGrid(file, sd, shape.hiddenSize);
  if (grid !== undefined && imageSize === undefined) return { latent: grid * shape.patchSize, from: "latent from pos_embed" };
  const named = /(256|512)x\1|(1024)-MS/.exec(basename(file));
  const px = imageSize ?? (named ? Number(named[1] ?? named[2]) : undefined);
  if (px === undefined) {
    throw new ForaError(
      "usage",
      `${file} has no "pos_embed" and its name does not say 256x256, 512x512 or 1024-MS, so the image size is unknown; ` +
        `pass --image-size PX, the size it was trained at (e.g. 1024)`,
    );
  }
  const said = imageSize === undefined ? `the file name's ${px} px` : `--image-size ${px}`;
  const step = vaeFactor * shape.patchSize;
  if (px % step !== 0) {
    throw new ForaError(
      "usage",
      `${file}: ${said} is not a multiple of ${step} (the VAE factor ${vaeFactor} x the patch size ${shape.patchSize})`,
    );
  }
  const latent = px / vaeFactor;
  if (grid !== undefined && latent !== grid * shape.patchSize) {
    throw new ForaError(
      "usage",
      `${file}: --image-size ${px} gives a ${latent}x${latent} latent (VAE factor ${vaeFactor}), ` +
        `but its pos_embed is for ${grid * shape.patchSize}x${grid * shape.patchSize}; leave --image-size out`,
    );
  }
  return { latent, from: `latent = ${px} px (${imageSize === undefined ? "file name" : "--image-size"}) / VAE factor ${vaeFactor}` };
}

/**
 * Whether the 1024-MS models' resolution and aspect-ratio embedders are there (PixArtMS:
 * `csize_embedder`, `ar_embedder`, each 256 frequencies -> Linear-SiLU-Linear to hidden / 3).
 * Part of them is a damaged file, refused here rather than when the graphs are built.
 */
function hasSizeEmbedders(file: string, sd: TorchStateDict, hidden: number): boolean {
  const names = [...sd.tensors.keys()];
  if (!names.some((n) => n.startsWith("csize_embedder.") || n.startsWith("ar_embedder."))) return false;
  if (hidden % 3 !== 0) fail(file, `has size embedders (micro-conditions), which need a hidden size divisible by 3, not ${hidden}`);
  const third = hidden / 3;
  const want: [string, number[]][] = ["csize_embedder", "ar_embedder"].flatMap((e) => [
    [`${e}.mlp.0.weight`, [third, TIMESTEP_FREQ_DIM]],
    [`${e}.mlp.0.bias`, [third]],
    [`${e}.mlp.2.weight`, [third, third]],
    [`${e}.mlp.2.bias`, [third]],
  ]);
  const missing = want.filter(([n]) => !sd.tensors.has(n)).map(([n]) => n);
  if (missing.length > 0) {
    fail(file, `has size embedders (micro-conditions) but lacks ${missing.join(", ")}; the 1024-MS models hold all ${want.length} tensors`);
  }
  for (const [n, shape] of want) {
    const got = sd.tensors.get(n)!.shape;
    if (formatShape(got) !== formatShape(shape)) fail(file, `tensor "${n}" has shape ${formatShape(got)}, expected ${formatShape(shape)}`);
  }
  return true;
}

/** Largest difference from the exact table each storage type allows (half an ulp near 1, plus margin). */
const POS_TOLERANCE: Record<DType, number> = { F32: 1e-5, F16: 1e-3, BF16: 8e-3 };

/**
 * The graph recomputes the position embedding (on the trained grid: positions / interpolationScale);
 * a checkpoint trained with another one would run wrongly.
 */
async function checkPositionEmbedding(
  sd: TorchStateDict,
  name: string,
  hidden: number,
  grid: number,
  interpolationScale = 1,
): Promise<void> {
  const t = sd.tensors.get(name)!;
  const dtype = floatDType(sd.ckpt.path, name, t);
  const got = bytesToFloat32(await readTorchTensor(sd.ckpt, t, name), dtype);
  const want = sinCosPositionEmbedding2d(hidden, grid, grid, { baseSize: grid, interpolationScale });
  let worst = 0, at = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  if (!(worst <= POS_TOLERANCE[dtype])) {
    fail(
      sd.ckpt.path,
      `${name} differs from the fixed 2D sin-cos table by ${worst} (token ${Math.floor(at / hidden)}, channel ${at % hidden}); ` +
        `fora computes that table in the graph, so this model would not run as trained`,
    );
  }
}

function floatDType(path: string, name: string, t: TorchTensor): DType {
  if (t.dtype === "F32" || t.dtype === "F16" || t.dtype === "BF16") return t.dtype;
  fail(path, `tensor ${JSON.stringify(name)} is ${t.dtype}; weights must be float32, float16 or bfloat16 (re-save it with .float())`);
}

function checkWeightDTypes(sd: TorchStateDict, keep: (name: string) => boolean = () => true): void {
  for (const [name, t] of sd.tensors) if (keep(name)) floatDType(sd.ckpt.path, name, t);
}

/** A component's weights: safetensors already (placed as they are), or pickled state dicts to write out. */
type Weights = { checkpoint: Checkpoint } | { parts: TorchStateDict[]; keep?: (name: string) => boolean };

/**
 * The weights of a T5 or VAE folder: safetensors (single or sharded, as checkpoint.ts reads
 * them), else a pickled `singles` file or `*.bin.index.json` shards, read as checkpoints.
 */
async function readWeightsFolder(dir: string, singles: string[], keep?: (name: string) => boolean): Promise<Weights> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  } catch (e) {
    throw new ForaError("usage", `${dir}: cannot read this folder: ${(e as Error).message}`);
  }
  if (names.some((n) => n.endsWith(".safetensors"))) return { checkpoint: await loadCheckpoint(dir) };
  const indexes = names.filter((n) => n.endsWith(".bin.index.json"));
  if (indexes.length > 1) fail(dir, `holds several indexes (${indexes.sort().join(", ")}); keep one`);
  let parts: TorchStateDict[];
  if (indexes.length === 1) {
    const indexPath = join(dir, indexes[0]);
    const weightMap = await readWeightMap(indexPath);
    parts = [];
    for (const shard of [...new Set(weightMap.values())].sort()) parts.push(await readTorchStateDict(join(dir, shard)));
    for (const [name, shard] of weightMap) {
      if (!parts.find((p) => basename(p.ckpt.path) === shard)!.tensors.has(name)) {
        fail(indexPath, `weight_map puts tensor ${JSON.stringify(name)} in ${shard}, which does not hold it`);
      }
    }
  } else {
    const single = singles.find((n) => names.includes(n) && n.endsWith(".bin"));
    if (single === undefined) {
      fail(
        dir,
        `no weights here: expected *.safetensors, ${singles.filter((n) => n.endsWith(".bin")).join(", ")} or *.bin.index.json`,
      );
    }
    parts = [await readTorchStateDict(join(dir, single))];
  }
  for (const p of parts) checkWeightDTypes(p, keep);
  return { parts, keep };
}

async function readVaeFolder(dir: string, latentChannels: number) {
  const cfgPath = join(dir, "config.json");
  const config = parseVaeConfig(await readJson(cfgPath), cfgPath);
  if (config.latentChannels !== latentChannels) {
    throw new ForaError(
      "bundle",
      `${cfgPath}: latent_channels ${config.latentChannels} does not match the transformer's in_channels ${latentChannels}`,
    );
  }
  return { config, weights: await readWeightsFolder(dir, ["diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors"]) };
}

/**
 * Safetensors weights are returned as they are (convert places them by hard link); pickled ones
 * are written as `work/folder/model.safetensors` (strided views gathered into row-major order),
 * which is then the bundle's file.
 */
async function stageWeights(w: Weights, work: string, folder: string, log: (line: string) => void): Promise<Checkpoint> {
  if ("checkpoint" in w) return w.checkpoint;
  const dir = join(work, ...folder.split("/"));
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, "model.safetensors");
  const entries = new Map<string, StreamedTensor>();
  let total = 0;
  for (const sd of w.parts) {
    for (const [name, t] of sd.tensors) {
      total++;
      if (w.keep && !w.keep(name)) continue;
      if (entries.has(name)) fail(sd.ckpt.path, `tensor ${JSON.stringify(name)} appears in more than one file`);
      entries.set(name, {
        dtype: floatDType(sd.ckpt.path, name, t),
        shape: t.shape,
        byteLength: tensorBytes(t),
        read: () => readTorchTensor(sd.ckpt, t, name),
      });
    }
  }
  const sources = w.parts.map((p) => basename(p.ckpt.path)).join(", ");
  await writeSafetensorsFrom(path, [...entries], { format: "pt", source: sources });
  const kept = entries.size === total ? `${total} tensors` : `${entries.size} of ${total} tensors (the encoder)`;
  log(`weights: wrote ${kept} from ${sources} to ${folder}/model.safetensors`);
  return await loadCheckpoint(path);
}
