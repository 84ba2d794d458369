/**
 * `fora convert FILE.pt DST`: a DiT checkpoint as PyTorch saves it (DiT's released
 * `DiT-XL-2-256x256.pt` is `torch.save(model.state_dict())`; training checkpoints hold
 * `{"model", "ema", "opt", "args"}`), with no config file. The architecture is read off the
 * tensor shapes, the number of heads from the published sizes (or `--num-heads`).
 *
 * Everything that could refuse the file (the unpickler, shapes, the position embedding) runs
 * before anything is written. The bundle then holds the tensors as safetensors, written at
 * convert time: nothing pickled is read after convert.
 */
import { basename, join } from "node:path";
import { ForaError } from "../errors.ts";
import { checkTransformerShape } from "../models/config_fields.ts";
import { conventions, type DitConfig } from "../models/dit/config.ts";
import { sinCosPositionEmbedding2d } from "../../kernels/position_embedding.ts";
import { type Checkpoint, loadCheckpoint } from "../weights/checkpoint.ts";
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

/** Heads of the published DiT sizes (S, B, L, XL), by hidden size. */
const PRESET_HEADS: Record<number, number> = { 1152: 16, 1024: 16, 768: 12, 384: 6 };

export interface TorchStateDict {
  ckpt: TorchCheckpoint;
  tensors: Map<string, TorchTensor>;
  /** Which part of the file the weights came from, when it was not the whole file. */
  note?: string;
}

export interface TorchDit extends TorchStateDict {
  config: DitConfig;
  headsFrom: "preset" | "--num-heads";
}

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

/**
 * The state dict inside a checkpoint: the whole object, or the `"ema"` weights of a training
 * checkpoint (as DiT's find_model takes them), or its `"model"`, or PixArt's `"state_dict"`.
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

/** DiT's architecture from the shapes of its tensors (original facebookresearch/DiT names). */
export async function readTorchDit(path: string, opts: { numHeads?: number }): Promise<TorchDit> {
  const sd = await readTorchStateDict(path);
  const shape = (name: string, rank: number): number[] => {
    const t = sd.tensors.get(name);
    if (t === undefined) {
      fail(
        path,
        `no tensor ${JSON.stringify(name)}: not a DiT state dict in facebookresearch/DiT's names (it holds ${sd.tensors.size} tensors)`,
      );
    }
    if (t.shape.length !== rank) {
      fail(path, `tensor ${JSON.stringify(name)} has shape ${formatShape(t.shape)}, expected ${rank} dimensions`);
    }
    return t.shape;
  };
  const [hidden, inChannels, patch, patchW] = shape("x_embedder.proj.weight", 4);
  if (patch !== patchW) fail(path, `x_embedder.proj.weight has a ${patch}x${patchW} patch; DiT's patches are square`);
  let depth = 0;
  while (sd.tensors.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) fail(path, `no "blocks.0.attn.qkv.weight": not a DiT state dict`);
  const classes = shape("y_embedder.embedding_table.weight", 2)[0] - 1;
  const out = shape("final_layer.linear.weight", 2)[0] / (patch * patch);
  if (out !== inChannels && out !== 2 * inChannels) {
    fail(path, `final_layer.linear.weight gives ${out} output channels; expected ${inChannels} or ${2 * inChannels}`);
  }
  const pos = sd.tensors.get("pos_embed");
  if (pos === undefined) fail(path, `no "pos_embed" tensor: fora reads the input size from it`);
  const tokens = pos.shape.length === 3 && pos.shape[0] === 1 && pos.shape[2] === hidden ? pos.shape[1] : -1;
  const grid = Math.round(Math.sqrt(tokens));
  if (tokens < 1 || grid * grid !== tokens) fail(path, `pos_embed has shape ${formatShape(pos.shape)}; expected [1, grid^2, ${hidden}]`);
  const numHeads = opts.numHeads ?? PRESET_HEADS[hidden];
  if (numHeads === undefined) {
    throw new ForaError(
      "usage",
      `${path}: hidden size ${hidden} is none of the published DiT sizes (1152, 1024, 768, 384), so the number of heads is unknown; ` +
        `pass --num-heads H`,
    );
  }
  const config = checkTransformerShape<DitConfig>({
    depth,
    hiddenSize: hidden,
    numHeads,
    patchSize: patch,
    inputSize: grid * patch,
    inChannels,
    numClasses: classes,
    learnSigma: out === 2 * inChannels,
    naming: "original",
    ...conventions("original"),
  }, path);
  await checkPositionEmbedding(sd, "pos_embed", hidden, grid);
  return { ...sd, config, headsFrom: opts.numHeads === undefined ? "preset" : "--num-heads" };
}

/** Largest difference from the exact table each storage type allows (half an ulp near 1, plus margin). */
const POS_TOLERANCE: Partial<Record<string, number>> = { F32: 1e-5, F64: 1e-5, F16: 1e-3, BF16: 8e-3 };

/** The graph recomputes the position embedding; a checkpoint trained with another one would run wrongly. */
async function checkPositionEmbedding(sd: TorchStateDict, name: string, hidden: number, grid: number): Promise<void> {
  const t = sd.tensors.get(name)!;
  const dtype = floatDType(sd.ckpt.path, name, t);
  const got = bytesToFloat32(await readTorchTensor(sd.ckpt, t, name), dtype);
  const want = sinCosPositionEmbedding2d(hidden, grid);
  let worst = 0, at = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  if (!(worst <= POS_TOLERANCE[dtype]!)) {
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

/** Checks that every tensor can be written as a weight, before anything is. */
export function checkWeightDTypes(sd: TorchStateDict): void {
  for (const [name, t] of sd.tensors) floatDType(sd.ckpt.path, name, t);
}

/**
 * Writes the tensors as `work/folder/file` (strided views gathered into row-major order) and
 * returns that file as a checkpoint: the bundle's weights, written where they belong.
 */
export async function writeTorchWeights(
  sd: TorchStateDict,
  work: string,
  folder: string,
  log: (line: string) => void,
  file = "model.safetensors",
): Promise<Checkpoint> {
  const dir = join(work, ...folder.split("/"));
  await Deno.mkdir(dir, { recursive: true });
  const path = join(dir, file);
  const entries: [string, StreamedTensor][] = [...sd.tensors].map(([name, t]) => [name, {
    dtype: floatDType(sd.ckpt.path, name, t),
    shape: t.shape,
    byteLength: tensorBytes(t),
    read: () => readTorchTensor(sd.ckpt, t, name),
  }]);
  await writeSafetensorsFrom(path, entries, { format: "pt", source: basename(sd.ckpt.path) });
  log(`weights: wrote ${sd.tensors.size} tensors from ${basename(sd.ckpt.path)} to ${folder}/${file}`);
  return await loadCheckpoint(path);
}

export function describeTorchDit(d: TorchDit): string {
  const c = d.config;
  const heads = d.headsFrom === "preset" ? `${c.numHeads} heads (published size)` : `${c.numHeads} heads (--num-heads)`;
  return `reading ${d.ckpt.path}: PyTorch DiT checkpoint, depth ${c.depth}, hidden ${c.hiddenSize}, ${heads}, patch ${c.patchSize}, ` +
    `latent ${c.inChannels}x${c.inputSize}x${c.inputSize}, ${c.numClasses} classes${c.learnSigma ? ", learned sigma" : ""}`;
}
