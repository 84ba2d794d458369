/**
 * Safetensors reading and writing. A safetensors file is an 8-byte little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte range,
 * then the raw tensor bytes. Headers come from untrusted downloads, so every field
 * is checked before any offset is used, and tensors are read one byte range at a
 * time so that multi-GB checkpoints never sit in memory whole.
 */
import { basename, resolve } from "node:path";
import { ForaError, printable } from "../errors.ts";
import { writeAll } from "../io/atomic.ts";
import { formatShape } from "../onnx/shapes.ts";

/** Dtypes that model weights may use. */
export type DType = "F32" | "F16" | "BF16";
/**
 * Dtypes the reader accepts: weights, the integer tensors goldens and labels use, and
 * the int8 weights `fora convert --precision int8` quantizes.
 */
export type ReadableDType = DType | "I64" | "I32" | "I8";

export interface TensorRef {
  /** Absolute path of the file holding the tensor. */
  file: string;
  name: string;
  dtype: ReadableDType;
  shape: number[];
  /** Absolute byte offset in the file: 8 + headerLength + begin. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** Absolute path. */
  path: string;
  fileSize: number;
  headerLength: number;
  tensors: Map<string, TensorRef>;
  metadata: Record<string, string>;
}

export interface WritableTensor {
  dtype: "F32" | "F16" | "I64" | "I8";
  shape: number[];
  /** F32: Float32Array; F16: raw half-precision bits in a Uint16Array; I64: BigInt64Array; I8: Int8Array. */
  data: Float32Array | Uint16Array | BigInt64Array | Int8Array;
}

/** Same cap as the reference Rust implementation: real headers are a few MB at most. */
export const MAX_HEADER_LENGTH = 100_000_000;

const ITEM_SIZE: Record<ReadableDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I8: 1,
};

const PICKLED_EXTENSIONS = [".bin", ".pt", ".pth", ".ckpt"];

export function isPickledPath(path: string): boolean {
  const lower = path.toLowerCase();
  return PICKLED_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

export function pickledCheckpointError(path: string): ForaError {
  return new ForaError(
    "weights",
    `${path}: pickled PyTorch checkpoints are not supported here (fora reads them only as "fora convert FILE.pt DST", ` +
      `for DiT and PixArt-alpha checkpoints); convert to safetensors first, e.g. in Python: from safetensors.torch import save_file; ` +
      `import torch; save_file(torch.load("${basename(path)}", map_location="cpu", weights_only=True), "model.safetensors")`,
  );
}

export { formatShape };

export async function readSafetensorsHeader(
  path: string,
): Promise<SafetensorsHeader> {
  if (isPickledPath(path)) throw pickledCheckpointError(path);
  const file = await openForRead(path);
  try {
    const { size: fileSize, isFile } = await file.stat();
    if (!isFile) fail(path, "is not a regular file; pass a .safetensors file");
    if (fileSize < 8) {
      fail(
        path,
        `is ${fileSize} bytes, too short to hold a safetensors header length`,
      );
    }
    const prefix = await readAt(file, path, 0, 8);
    const headerLength = checkHeaderLength(path, prefix, fileSize);
    const headerBytes = await readAt(file, path, 8, headerLength);
    const header = parseHeaderJson(path, headerBytes);
    const dataSize = fileSize - 8 - headerLength;
    const { tensors, metadata } = parseHeader(
      path,
      header,
      dataSize,
      8 + headerLength,
    );
    return { path: resolve(path), fileSize, headerLength, tensors, metadata };
  } finally {
    file.close();
  }
}

export async function readTensorBytes(ref: TensorRef): Promise<Uint8Array> {
  const file = await openForRead(ref.file);
  try {
    return await readAt(file, ref.file, ref.offset, ref.byteLength, ref.name);
  } finally {
    file.close();
  }
}

/**
 * Safetensors data is little-endian, as is every platform ONNX Runtime ships for,
 * so the bytes are viewed through typed arrays directly.
 */
export async function readTensorF32(ref: TensorRef): Promise<Float32Array> {
  return bytesToFloat32(await readTensorBytes(ref), ref.dtype);
}

/** Little-endian tensor bytes (a fresh, unshared buffer) as F32 values. */
export function bytesToFloat32(bytes: Uint8Array, dtype: ReadableDType): Float32Array {
  const buffer = bytes.buffer as ArrayBuffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buffer);
    case "F16":
      return halfToFloat32(new Uint16Array(buffer));
    case "BF16":
      return bfloat16ToFloat32(new Uint16Array(buffer));
    case "I64":
      return Float32Array.from(new BigInt64Array(buffer), Number);
    case "I32":
      return Float32Array.from(new Int32Array(buffer));
    case "I8":
      return Float32Array.from(new Int8Array(buffer));
  }
}

export async function writeSafetensors(
  path: string,
  tensors: Record<string, WritableTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const entries = Object.entries(tensors);
  for (const [name, tensor] of entries) checkWritable(path, name, tensor);
  await writeSafetensorsFrom(
    path,
    entries.map(([name, { dtype, shape, data }]) => [name, {
      dtype,
      shape,
      byteLength: data.byteLength,
      read: () => Promise.resolve(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
    }]),
    metadata,
  );
}

/** A tensor whose bytes are fetched only when written: one at a time, so a multi-GB model never sits in memory whole. */
export interface StreamedTensor {
  dtype: ReadableDType;
  shape: number[];
  byteLength: number;
  read(): Promise<Uint8Array>;
}

/** Writes tensors in the order given, through a temporary file renamed into place. */
export async function writeSafetensorsFrom(
  path: string,
  entries: [string, StreamedTensor][],
  metadata: Record<string, string> = {},
): Promise<void> {
  const header = encodeHeader(entries, metadata);
  const tmp = `${path}.tmp-${randomSuffix()}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      const length = new Uint8Array(8);
      new DataView(length.buffer).setBigUint64(0, BigInt(header.length), true);
      await writeAll(file, length);
      await writeAll(file, header);
      for (const [name, t] of entries) {
        const bytes = await t.read();
        if (bytes.byteLength !== t.byteLength) {
          throw new Error(`tensor ${JSON.stringify(name)} gave ${bytes.byteLength} bytes, not ${t.byteLength}`);
        }
        await writeAll(file, bytes);
      }
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof ForaError) throw e;
    throw new ForaError(
      "io",
      `${path}: could not write safetensors file: ${errorText(e)}`,
    );
  }
}

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

function failTensor(path: string, name: string, message: string): never {
  fail(path, `tensor ${JSON.stringify(name)}: ${message}`);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function openForRead(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail(path, "no such file");
    fail(path, `cannot open: ${errorText(e)}`);
  }
}

export async function readAt(
  file: Deno.FsFile,
  path: string,
  offset: number,
  length: number,
  tensor?: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(buf.subarray(done));
    if (n === null) {
      // The header was checked against the size at open time; reaching this means
      // the file shrank since (e.g. a download still being written).
      const what = tensor === undefined ? "" : `tensor ${JSON.stringify(tensor)}: `;
      fail(
        path,
        `${what}file ends at byte ${offset + done}, expected ${length} bytes from ${offset}`,
      );
    }
    done += n;
  }
  return buf;
}

function checkHeaderLength(
  path: string,
  prefix: Uint8Array,
  fileSize: number,
): number {
  const declared = new DataView(prefix.buffer).getBigUint64(0, true);
  const plausible = declared <= BigInt(MAX_HEADER_LENGTH) &&
    declared <= BigInt(fileSize - 8);
  if (!plausible && looksPickled(prefix)) throw pickledCheckpointError(path);
  if (declared > BigInt(MAX_HEADER_LENGTH)) {
    fail(
      path,
      `header length ${declared} exceeds the ${MAX_HEADER_LENGTH}-byte cap; not a safetensors file?`,
    );
  }
  if (!plausible) {
    fail(
      path,
      `header length ${declared} runs past the end of the ${fileSize}-byte file; truncated or not a safetensors file?`,
    );
  }
  return Number(declared);
}

/** PyTorch's zip format and raw pickles (the legacy format), e.g. mis-named as .safetensors. */
export function looksPickled(prefix: Uint8Array): boolean {
  const zip = prefix[0] === 0x50 && prefix[1] === 0x4b && prefix[2] === 0x03 &&
    prefix[3] === 0x04;
  const pickle = prefix[0] === 0x80 && prefix[1] >= 2 && prefix[1] <= 5;
  return zip || pickle;
}

function parseHeaderJson(
  path: string,
  bytes: Uint8Array,
): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fail(path, "header is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // JSON.parse quotes the bad text: escape its control bytes, so the error stays one printable line.
    fail(path, `header is not valid JSON (${printable(errorText(e))})`);
  }
  if (!isPlainObject(value)) fail(path, "header is not a JSON object");
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface Extent {
  name: string;
  begin: number;
  end: number;
}

function parseHeader(
  path: string,
  header: Record<string, unknown>,
  dataSize: number,
  dataStart: number,
): { tensors: Map<string, TensorRef>; metadata: Record<string, string> } {
  const tensors = new Map<string, TensorRef>();
  const extents: Extent[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(path, entry);
      continue;
    }
    const { dtype, shape, begin, end } = parseEntry(
      path,
      name,
      entry,
      dataSize,
    );
    const file = resolve(path);
    tensors.set(name, {
      file,
      name,
      dtype,
      shape,
      offset: dataStart + begin,
      byteLength: end - begin,
    });
    extents.push({ name, begin, end });
  }
  checkNoOverlap(path, extents);
  return { tensors, metadata };
}

function parseMetadata(path: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) fail(path, "__metadata__ is not a JSON object");
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      fail(
        path,
        `__metadata__ must map strings to strings, but ${JSON.stringify(key)} holds a ${typeof v}`,
      );
    }
  }
  return value as Record<string, string>;
}

function parseEntry(
  path: string,
  name: string,
  entry: unknown,
  dataSize: number,
): { dtype: ReadableDType; shape: number[]; begin: number; end: number } {
  if (!isPlainObject(entry)) {
    failTensor(path, name, "header entry is not a JSON object");
  }
  const dtype = parseDType(path, name, entry.dtype);
  const shape = parseIntList(path, name, "shape", entry.shape);
  const offsets = parseIntList(path, name, "data_offsets", entry.data_offsets);
  if (offsets.length !== 2) {
    failTensor(
      path,
      name,
      `data_offsets must be [begin, end], got ${JSON.stringify(entry.data_offsets)}`,
    );
  }
  const [begin, end] = offsets;
  if (begin > end) {
    failTensor(
      path,
      name,
      `data_offsets ${formatShape(offsets)} end before they begin`,
    );
  }
  if (end > dataSize) {
    failTensor(
      path,
      name,
      `data_offsets ${formatShape(offsets)} reach past the data area, which holds ${dataSize} bytes`,
    );
  }
  const needed = byteSize(path, name, shape, dtype);
  if (end - begin !== needed) {
    failTensor(
      path,
      name,
      `data_offsets ${formatShape(offsets)} hold ${end - begin} bytes but shape ${formatShape(shape)} of ${dtype} needs ${needed}`,
    );
  }
  return { dtype, shape, begin, end };
}

function parseDType(path: string, name: string, value: unknown): ReadableDType {
  if (typeof value === "string" && Object.hasOwn(ITEM_SIZE, value)) {
    return value as ReadableDType;
  }
  const supported = Object.keys(ITEM_SIZE).join(", ");
  failTensor(
    path,
    name,
    `unknown dtype ${JSON.stringify(value)} (supported: ${supported})`,
  );
}

function parseIntList(
  path: string,
  name: string,
  field: string,
  value: unknown,
): number[] {
  const ok = Array.isArray(value) &&
    value.every((v) => Number.isSafeInteger(v) && v >= 0);
  if (!ok) {
    failTensor(
      path,
      name,
      `${field} must be a list of non-negative integers, got ${JSON.stringify(value)}`,
    );
  }
  return value as number[];
}

function byteSize(
  path: string,
  name: string,
  shape: number[],
  dtype: ReadableDType,
): number {
  const bytes = shape.reduce((n, d) => n * d, ITEM_SIZE[dtype]);
  if (!Number.isSafeInteger(bytes)) {
    failTensor(path, name, `shape ${formatShape(shape)} is too large`);
  }
  return bytes;
}

function checkNoOverlap(path: string, extents: Extent[]): void {
  // Empty tensors occupy no bytes, so they cannot collide with anything.
  const sorted = extents.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [prev, cur] = [sorted[i - 1], sorted[i]];
    if (cur.begin < prev.end) {
      fail(
        path,
        `tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}] and ${
          JSON.stringify(cur.name)
        } [${cur.begin}, ${cur.end}] overlap`,
      );
    }
  }
}

/** F16 bits to F32 bits: rebias the exponent, widen the mantissa; subnormals via arithmetic. */
function halfToFloat32(half: Uint16Array): Float32Array {
  const out = new Float32Array(half.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < half.length; i++) {
    const h = half[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      out[i] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 0x1f) {
      bits[i] = sign | 0x7f800000 | (mant << 13);
    } else {
      bits[i] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  return out;
}

/** BF16 is the top half of an F32. */
function bfloat16ToFloat32(half: Uint16Array): Float32Array {
  const out = new Float32Array(half.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
  return out;
}

const WRITABLE_ARRAY = {
  F32: Float32Array,
  F16: Uint16Array,
  I64: BigInt64Array,
  I8: Int8Array,
} as const;

function checkWritable(
  path: string,
  name: string,
  tensor: WritableTensor,
): void {
  const { dtype, shape, data } = tensor;
  if (name === "__metadata__") {
    fail(path, `"__metadata__" is reserved and cannot name a tensor`);
  }
  if (!Object.hasOwn(WRITABLE_ARRAY, dtype)) {
    failTensor(
      path,
      name,
      `cannot write dtype ${JSON.stringify(dtype)} (writable: F32, F16, I64, I8)`,
    );
  }
  if (!(data instanceof WRITABLE_ARRAY[dtype])) {
    failTensor(
      path,
      name,
      `${dtype} data must be a ${WRITABLE_ARRAY[dtype].name}, got ${data.constructor.name}`,
    );
  }
  parseIntList(path, name, "shape", shape);
  const elements = shape.reduce((n, d) => n * d, 1);
  if (data.length !== elements) {
    failTensor(
      path,
      name,
      `shape ${formatShape(shape)} needs ${elements} elements but data holds ${data.length}`,
    );
  }
}

/** The header is space-padded so that the data area starts 8-byte aligned, as the format's reference writer does. */
function encodeHeader(
  entries: [string, Pick<StreamedTensor, "dtype" | "shape" | "byteLength">][],
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let begin = 0;
  for (const [name, { dtype, shape, byteLength }] of entries) {
    header[name] = {
      dtype,
      shape,
      data_offsets: [begin, begin + byteLength],
    };
    begin += byteLength;
  }
  const json = JSON.stringify(header);
  const padded = json +
    " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  return new TextEncoder().encode(padded);
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
