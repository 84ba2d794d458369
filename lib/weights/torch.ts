/**
 * PyTorch checkpoints (`torch.save`, zip format of PyTorch >= 1.6): an archive whose single
 * top folder holds `data.pkl` (the object, pickled), `data/<key>` (one stored entry per
 * storage), `version` and, in newer files, `byteorder`. The pickle is read by the restricted
 * unpickler; tensors stay byte ranges of their storage entries until read, so a multi-GB
 * checkpoint never sits in memory whole. Tensors are handed on as safetensors: contiguous ones
 * are copied byte for byte, non-contiguous views are gathered into row-major order.
 */
import { basename } from "node:path";
import { ForaError } from "../errors.ts";
import { isKind, type PyDict, type PyValue, type Storage, TORCH_ITEM_SIZE, type TorchDType, type TorchTensor, unpickle } from "./pickle.ts";
import { isPickledPath, looksPickled, openForRead, readAt } from "./safetensors.ts";
import { hasZipMagic, readEntry, readZipDirectory, type ZipArchive, type ZipEntry } from "./zip.ts";

export interface TorchCheckpoint {
  path: string;
  zip: ZipArchive;
  /** The archive's top folder, e.g. "archive/". */
  prefix: string;
  root: PyValue;
}

/** data.pkl of a checkpoint is its structure only (a few MB for the largest models); the cap bounds a hostile one. */
const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
/** Format versions torch.save has written (1 for PyTorch 1.6, 3 since). */
const KNOWN_VERSIONS = new Set(["1", "2", "3"]);

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

/** Whether `path` is a file to read as a PyTorch checkpoint: by its name (.pt, .pth, .bin, .ckpt) or its first bytes. */
export async function isTorchFile(path: string): Promise<boolean> {
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info?.isFile) return false;
  if (isPickledPath(path)) return true;
  return looksPickled(await readHead(path));
}

async function readHead(path: string): Promise<Uint8Array> {
  const file = await openForRead(path);
  try {
    return await readAt(file, path, 0, Math.min(8, (await file.stat()).size));
  } finally {
    file.close();
  }
}

export async function readTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  const head = await readHead(path);
  if (!hasZipMagic(head)) {
    if (head[0] === 0x80) {
      fail(
        path,
        `is in PyTorch's legacy (pre-1.6) format, which fora does not read; re-save it in the zip format from a trusted copy: ` +
          `python -c "import torch; torch.save(torch.load('${basename(path)}', weights_only=True), 'resaved.pt')"`,
      );
    }
    fail(path, "is not a PyTorch checkpoint (no zip archive)");
  }
  const zip = await readZipDirectory(path);
  const pkl = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    fail(path, pkl.length === 0 ? "zip archive without <name>/data.pkl: not a torch.save checkpoint" : "holds several data.pkl");
  }
  const prefix = pkl[0].slice(0, -"data.pkl".length);
  const stray = [...zip.entries.keys()].find((n) => !n.startsWith(prefix));
  if (stray !== undefined) fail(path, `zip entry ${JSON.stringify(stray)} lies outside the checkpoint's folder ${JSON.stringify(prefix)}`);
  await checkHeader(zip, prefix);

  const pklEntry = zip.entries.get(pkl[0])!;
  if (pklEntry.size > MAX_PICKLE_BYTES) fail(path, `data.pkl is ${pklEntry.size} bytes, beyond the ${MAX_PICKLE_BYTES}-byte cap`);
  const seen = new Map<string, Storage>();
  const root = unpickle(await readEntry(zip, pklEntry), {
    file: path,
    checkStorage(s) {
      const entry = zip.entries.get(`${prefix}data/${s.key}`);
      if (entry === undefined) {
        fail(
          path,
          `the pickle names storage ${JSON.stringify(s.key)}, but the archive has no entry ${JSON.stringify(`${prefix}data/${s.key}`)}`,
        );
      }
      const bytes = s.numel * TORCH_ITEM_SIZE[s.dtype];
      if (bytes > entry.size) {
        fail(
          path,
          `storage ${JSON.stringify(s.key)} declares ${s.numel} ${s.dtype} elements (${bytes} bytes), beyond its ${entry.size}-byte entry`,
        );
      }
      const earlier = seen.get(s.key);
      if (earlier !== undefined && earlier.dtype !== s.dtype) {
        fail(path, `storage ${JSON.stringify(s.key)} is named as both ${earlier.dtype} and ${s.dtype}`);
      }
      seen.set(s.key, s);
    },
  });
  return { path, zip, prefix, root };
}

async function checkHeader(zip: ZipArchive, prefix: string): Promise<void> {
  const text = async (name: string) => {
    const e = zip.entries.get(prefix + name);
    if (e === undefined) return undefined;
    if (e.size > 64) fail(zip.path, `${prefix}${name} is ${e.size} bytes; expected a short word`);
    return new TextDecoder().decode(await readEntry(zip, e)).trim();
  };
  const order = await text("byteorder");
  if (order !== undefined && order !== "little") {
    fail(
      zip.path,
      `was saved with byte order ${JSON.stringify(order)}; fora reads little-endian checkpoints (re-save it on an x86 or ARM machine)`,
    );
  }
  const version = await text("version");
  if (version !== undefined && !KNOWN_VERSIONS.has(version)) {
    fail(zip.path, `has checkpoint format version ${JSON.stringify(version)}; fora reads versions ${[...KNOWN_VERSIONS].join(", ")}`);
  }
}

/** Whether the view is the row-major layout of its shape (dimensions of size 1 may have any stride). */
export function isContiguous(t: TorchTensor): boolean {
  let expected = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

export function tensorBytes(t: TorchTensor): number {
  return t.shape.reduce((n, d) => n * d, TORCH_ITEM_SIZE[t.dtype]);
}

function storageEntry(ckpt: TorchCheckpoint, t: TorchTensor): ZipEntry {
  return ckpt.zip.entries.get(`${ckpt.prefix}data/${t.storage.key}`)!;
}

/** Where a contiguous tensor's bytes lie in the checkpoint file. */
export function tensorRange(ckpt: TorchCheckpoint, t: TorchTensor): { offset: number; length: number } | undefined {
  if (!isContiguous(t)) return undefined;
  return { offset: storageEntry(ckpt, t).offset + t.storageOffset * TORCH_ITEM_SIZE[t.dtype], length: tensorBytes(t) };
}

/** A view reads at most this much of its storage when gathered: typed arrays stop at 2 GiB. */
const MAX_GATHER_SPAN = 2 ** 31 - 1;

/** The tensor's elements in row-major order (gathered from its storage when it is a strided view). */
export async function readTorchTensor(ckpt: TorchCheckpoint, t: TorchTensor, name: string): Promise<Uint8Array> {
  const item = TORCH_ITEM_SIZE[t.dtype];
  const entry = storageEntry(ckpt, t);
  const count = t.shape.reduce((n, d) => n * d, 1);
  if (count === 0) return new Uint8Array(0);
  if (isContiguous(t)) return await readEntry(ckpt.zip, entry, t.storageOffset * item, count * item);
  const last = t.shape.reduce((n, d, i) => n + (d - 1) * t.stride[i], 0);
  const span = (last + 1) * item;
  if (span > MAX_GATHER_SPAN) {
    fail(ckpt.path, `tensor ${JSON.stringify(name)} is a strided view spanning ${span} bytes; re-save it with .contiguous()`);
  }
  const src = await readEntry(ckpt.zip, entry, t.storageOffset * item, span);
  const out = new Uint8Array(count * item);
  const index = new Array<number>(t.shape.length).fill(0);
  for (let k = 0; k < count; k++) {
    let at = 0;
    for (let d = 0; d < index.length; d++) at += index[d] * t.stride[d];
    out.set(src.subarray(at * item, at * item + item), k * item);
    for (let d = index.length - 1; d >= 0; d--) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/**
 * The tensors of a state dict: `dict` maps names to tensors. Entries that are not tensors
 * (training checkpoints sometimes mix in counters) are refused with their name.
 */
export function stateDictTensors(path: string, dict: PyDict, where: string): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of dict.entries) {
    if (typeof k !== "string") fail(path, `${where} has a key of type ${typeof k}; a state dict maps names to tensors`);
    if (!isKind(v, "tensor")) fail(path, `${where}[${JSON.stringify(k)}] is not a tensor; a state dict maps names to tensors`);
    out.set(k, v);
  }
  return out;
}

export type { PyDict, TorchDType, TorchTensor };
