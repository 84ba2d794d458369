/**
 * Locating a model's tensors: one safetensors file, a folder holding one, or a
 * sharded checkpoint described by a `*.safetensors.index.json`. Only headers are
 * read here; tensor bytes are fetched later, one TensorRef at a time.
 */
import { basename, dirname, join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import {
  formatShape,
  isPickledPath,
  pickledCheckpointError,
  readSafetensorsHeader,
  type SafetensorsHeader,
  type TensorRef,
} from "./safetensors.ts";

export interface Checkpoint {
  /** Absolute path of the folder holding the files. */
  dir: string;
  /** Absolute paths of the safetensors files. */
  files: string[];
  tensors: Map<string, TensorRef>;
}

/** The names transformers and diffusers save unsharded weights under. */
const SINGLE_FILE_NAMES = [
  "model.safetensors",
  "diffusion_pytorch_model.safetensors",
];
const INDEX_SUFFIX = ".safetensors.index.json";

export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const absolute = resolve(path);
  const info = await statOrFail(absolute);
  if (info.isDirectory) return loadFolder(absolute);
  if (absolute.endsWith(".index.json")) return loadIndex(absolute);
  return loadSingleFile(absolute);
}

export function requireTensor(
  ckpt: Checkpoint,
  name: string,
  shape?: number[],
): TensorRef {
  const ref = ckpt.tensors.get(name);
  if (ref === undefined) {
    throw new ForaError(
      "weights",
      `${ckpt.dir}: checkpoint has no tensor ${JSON.stringify(name)}${similarNamesHint(ckpt, name)}`,
    );
  }
  if (shape !== undefined && !sameShape(ref.shape, shape)) {
    throw new ForaError(
      "weights",
      `${ckpt.dir}: tensor ${JSON.stringify(name)} in ${basename(ref.file)} has shape ${formatShape(ref.shape)}, expected ${
        formatShape(shape)
      }`,
    );
  }
  return ref;
}

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

async function statOrFail(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail(path, "no such file or folder");
    fail(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function loadSingleFile(path: string): Promise<Checkpoint> {
  const header = await readSafetensorsHeader(path);
  return { dir: dirname(path), files: [path], tensors: header.tensors };
}

async function loadFolder(dir: string): Promise<Checkpoint> {
  const names = await listFiles(dir);
  const singles = SINGLE_FILE_NAMES.filter((n) => names.includes(n));
  if (singles.length > 1) {
    fail(dir, `holds both ${singles.join(" and ")}; pass the file to use`);
  }
  if (singles.length === 1) return loadSingleFile(join(dir, singles[0]));
  const indexes = names.filter((n) => n.endsWith(INDEX_SUFFIX));
  if (indexes.length > 1) {
    fail(
      dir,
      `holds several safetensors indexes (${indexes.join(", ")}); pass the one to use`,
    );
  }
  if (indexes.length === 1) return loadIndex(join(dir, indexes[0]));
  const pickled = names.find(isPickledPath);
  if (pickled !== undefined) throw pickledCheckpointError(join(dir, pickled));
  fail(
    dir,
    `no ${SINGLE_FILE_NAMES.join(", ")} or *${INDEX_SUFFIX} here${await folderHint(dir, names)}`,
  );
}

async function listFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile) names.push(entry.name);
  }
  return names.sort();
}

/** Points at the likeliest intended path: a stray safetensors file, or a diffusers pipeline's transformer folder. */
async function folderHint(dir: string, names: string[]): Promise<string> {
  const others = names.filter((n) => n.endsWith(".safetensors"));
  if (others.length > 0) {
    return `; to use ${others[0]}, pass that file directly`;
  }
  const transformer = join(dir, "transformer");
  const isPipeline = await Deno.stat(transformer).then(
    (s) => s.isDirectory,
    () => false,
  );
  return isPipeline ? `; this looks like a diffusers pipeline, try ${transformer}` : "";
}

async function loadIndex(indexPath: string): Promise<Checkpoint> {
  const stem = indexPath.slice(0, -".index.json".length);
  if (isPickledPath(stem)) throw pickledCheckpointError(indexPath);
  const dir = dirname(indexPath);
  const weightMap = await readWeightMap(indexPath);
  const shardNames = [...new Set(weightMap.values())].sort();
  const headers = new Map<string, SafetensorsHeader>();
  for (const shard of shardNames) {
    headers.set(shard, await readSafetensorsHeader(join(dir, shard)));
  }
  const tensors = mergeShards(indexPath, headers);
  for (const [name, shard] of weightMap) {
    if (!headers.get(shard)!.tensors.has(name)) {
      fail(
        indexPath,
        `weight_map puts tensor ${JSON.stringify(name)} in ${shard}, but ${join(dir, shard)} does not hold it`,
      );
    }
  }
  return { dir, files: shardNames.map((s) => join(dir, s)), tensors };
}

export async function readWeightMap(indexPath: string): Promise<Map<string, string>> {
  const index = await readJson(indexPath);
  const weightMap = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(weightMap)) {
    fail(indexPath, `index has no "weight_map" object`);
  }
  const result = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== "string" || !isPlainFileName(shard)) {
      fail(
        indexPath,
        `weight_map sends tensor ${JSON.stringify(name)} to ${JSON.stringify(shard)}, which is not a plain file name in the index's folder`,
      );
    }
    result.set(name, shard);
  }
  return result;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      await Deno.readFile(path),
    );
  } catch (e) {
    fail(
      path,
      e instanceof TypeError ? "not valid UTF-8" : `cannot read: ${(e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Shard names come from a downloaded file: anything that could leave the folder is refused. */
function isPlainFileName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[/\\\0]/.test(name);
}

function mergeShards(
  indexPath: string,
  headers: Map<string, SafetensorsHeader>,
): Map<string, TensorRef> {
  const tensors = new Map<string, TensorRef>();
  for (const [shard, header] of headers) {
    for (const [name, ref] of header.tensors) {
      const earlier = tensors.get(name);
      if (earlier !== undefined) {
        fail(
          indexPath,
          `tensor ${JSON.stringify(name)} appears in both ${basename(earlier.file)} and ${shard}`,
        );
      }
      tensors.set(name, ref);
    }
  }
  return tensors;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Names differing only in their prefix (e.g. "model.diffusion_model." vs none) are the usual mix-up. */
function similarNamesHint(ckpt: Checkpoint, name: string): string {
  const tail = name.split(".").slice(-2).join(".");
  const similar = [...ckpt.tensors.keys()].filter((n) => n.endsWith(tail))
    .slice(0, 3);
  if (similar.length > 0) {
    return `; similar names: ${similar.map((n) => JSON.stringify(n)).join(", ")}`;
  }
  return ` (it holds ${ckpt.tensors.size} tensors)`;
}
