/**
 * NumPy `.npy` files of float32 (`<f4`, C order): latents, noise and reference
 * outputs exchanged with Python. A file is the magic "\x93NUMPY", a version byte
 * pair, a little-endian header length (2 bytes in version 1.0, 4 in 2.0), an ASCII
 * Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), }, then
 * the raw array. Files may come from anywhere, so the header is parsed without
 * eval and every size is checked against the file's real size before anything is
 * allocated from it. Reads versions 1.0 and 2.0; writes 1.0, atomically.
 */
import { ForaError, printable } from "../errors.ts";
import { reasonOf, writeFileAtomic } from "./atomic.ts";

export interface NpyArray {
  shape: number[];
  /** product(shape) values, C order. */
  data: Float32Array;
}

export const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** NumPy itself refuses headers over 10 000 bytes unless told otherwise. */
export const MAX_NPY_HEADER = 65_536;

export async function readNpy(path: string): Promise<NpyArray> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    fail(
      path,
      `could not open: ${e instanceof Deno.errors.NotFound ? "no such file" : reasonOf(e)}`,
    );
  }
  try {
    const { size, isFile } = await file.stat();
    if (!isFile) fail(path, "is not a regular file");
    const prefix = await readExactly(file, path, Math.min(size, 12));
    const { headerStart, headerLength } = npyPreamble(prefix, size, [1, 2], (m) => fail(path, m));
    const headerEnd = headerStart + headerLength;
    if (headerEnd > size) {
      fail(
        path,
        `header length ${headerLength} runs past the end of the ${size}-byte file`,
      );
    }
    await file.seek(headerStart, Deno.SeekMode.Start);
    const header = parseHeader(
      path,
      await readExactly(file, path, headerLength),
    );
    const count = header.shape.reduce((a, b) => a * b, 1);
    const dataBytes = size - headerEnd;
    if (!Number.isSafeInteger(count) || count * 4 !== dataBytes) {
      const want = Number.isSafeInteger(count) ? `${count * 4} bytes` : "an impossible number of bytes";
      const what = count * 4 > dataBytes ? "truncated" : "has extra bytes";
      fail(
        path,
        `${what}: shape ${pythonTuple(header.shape)} needs ${want} of float32 data, the file holds ${dataBytes}`,
      );
    }
    const data = new Float32Array(count);
    await file.seek(headerEnd, Deno.SeekMode.Start);
    await readInto(file, path, new Uint8Array(data.buffer));
    return { shape: header.shape, data };
  } finally {
    file.close();
  }
}

export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  const { shape, data } = array;
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new RangeError(`writeNpy: bad shape ${pythonTuple(shape)}`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new RangeError(
      `writeNpy: ${data.length} values for shape ${pythonTuple(shape)}`,
    );
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  await writeFileAtomic(path, [npyHeader("<f4", shape), bytes], ".npy array");
}

/** Python's tuple repr: (), (5,), (2, 3). */
export function pythonTuple(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

/** A version 1.0 .npy preamble and header for a C-order array, padded to 64 bytes as NumPy pads. */
export function npyHeader(descr: string, shape: readonly number[]): Uint8Array {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`npyHeader: bad shape ${pythonTuple(shape)}`);
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pythonTuple(shape)}, }`;
  // Pad with spaces so the data starts on a 64-byte boundary, as NumPy does; end with \n.
  const unpadded = 10 + dict.length + 1;
  const text = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  if (text.length > 0xffff) throw new RangeError(`npyHeader: header of ${text.length} bytes`);
  const out = new Uint8Array(10 + text.length);
  out.set(NPY_MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(new TextEncoder().encode(text), 10);
  return out;
}

/**
 * The preamble of a .npy file of `size` bytes, from its first bytes: the magic, a format
 * version among `majors` (x.0), and the header's length and start, within NumPy's limit.
 */
export function npyPreamble(
  prefix: Uint8Array,
  size: number,
  majors: readonly number[],
  fail: (message: string) => never,
): { major: number; headerStart: number; headerLength: number } {
  if (prefix.length < 6 || NPY_MAGIC.some((b, i) => prefix[i] !== b)) {
    fail("is not a .npy file (it does not start with \\x93NUMPY)");
  }
  if (prefix.length < 8) fail(`is truncated: ${size} bytes, too short for a .npy header`);
  const [major, minor] = [prefix[6], prefix[7]];
  if (!majors.includes(major) || minor !== 0) {
    const known = majors.map((m) => `${m}.0`).join(", ");
    fail(`.npy format version ${major}.${minor} is not supported (${known} are); save it with np.save`);
  }
  const lengthBytes = major === 1 ? 2 : 4;
  if (prefix.length < 8 + lengthBytes) fail(`is truncated: ${size} bytes, too short for a .npy header`);
  const view = new DataView(
    prefix.buffer,
    prefix.byteOffset,
    prefix.byteLength,
  );
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerLength > MAX_NPY_HEADER) fail(`header length ${headerLength} is over the ${MAX_NPY_HEADER}-byte limit; the file is corrupt`);
  return { major, headerStart: 8 + lengthBytes, headerLength };
}

interface Header {
  shape: number[];
}

/** Parses and checks the dict literal; only float32, little-endian, C order passes. */
function parseHeader(path: string, bytes: Uint8Array): Header {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fail(path, "header is not text; the file is corrupt");
  }
  const dict = parseHeaderDict(text, (m) => fail(path, m));
  const keys = [...dict.keys()].sort().join(", ");
  if (keys !== "descr, fortran_order, shape") {
    fail(
      path,
      `header must have exactly the keys descr, fortran_order, shape; it has ${keys || "none"}`,
    );
  }
  const descr = dict.get("descr"),
    fortran = dict.get("fortran_order"),
    shape = dict.get("shape");
  if (typeof descr !== "string") {
    fail(path, `header descr ${JSON.stringify(descr)} is not a dtype string`);
  }
  if (descr !== "<f4") {
    const fix = descr === ">f4"
      ? "big-endian float32 is not supported; save it with arr.astype('<f4')"
      : "fora reads float32 arrays only; save it with arr.astype(np.float32)";
    fail(path, `dtype ${JSON.stringify(descr)}: ${fix}`);
  }
  if (typeof fortran !== "boolean") {
    fail(path, "header fortran_order is not True or False");
  }
  if (fortran) {
    fail(
      path,
      "is stored in Fortran order; save it with np.save(path, np.ascontiguousarray(arr))",
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number")) {
    fail(path, "header shape is not a tuple of integers");
  }
  return { shape: shape as number[] };
}

export type PyValue = string | boolean | number | PyValue[];

/** A .npy header's dict literal, or the error of `fail` quoting it. */
export function parseHeaderDict(text: string, fail: (message: string) => never): Map<string, PyValue> {
  try {
    return parsePyDict(text);
  } catch (e) {
    return fail(`header is not a valid .npy header dict (${(e as Error).message}): ${JSON.stringify(text.trim())}`);
  }
}

/**
 * The subset of Python literals a .npy header uses: a dict of quoted string keys
 * to quoted strings, True/False, non-negative integers and tuples of those.
 */
function parsePyDict(text: string): Map<string, PyValue> {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) throw new Error(`expected '${c}' at offset ${i}`);
    i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error("unterminated string");
      const s = text.slice(i + 1, end);
      if (s.includes("\\")) {
        throw new Error("escapes in strings are not supported");
      }
      i = end + 1;
      return s;
    }
    if (text.startsWith("True", i)) return (i += 4, true);
    if (text.startsWith("False", i)) return (i += 5, false);
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const items: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) break;
        items.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== close) {
          throw new Error(`expected ',' or '${close}' at offset ${i}`);
        }
      }
      i++;
      return items;
    }
    const m = /^\d+L?/.exec(text.slice(i));
    if (m) {
      i += m[0].length;
      const n = Number(m[0].replace("L", ""));
      if (!Number.isSafeInteger(n)) {
        throw new Error(`integer ${m[0]} is too large`);
      }
      return n;
    }
    throw new Error(
      `unexpected ${c === undefined ? "end" : `'${c}'`} at offset ${i}`,
    );
  };
  const dict = new Map<string, PyValue>();
  expect("{");
  for (;;) {
    ws();
    if (text[i] === "}") break;
    const key = value();
    if (typeof key !== "string") throw new Error("dict key is not a string");
    if (dict.has(key)) throw new Error(`key '${key}' appears twice`);
    expect(":");
    dict.set(key, value());
    ws();
    if (text[i] === ",") i++;
    else if (text[i] !== "}") {
      throw new Error(`expected ',' or '}' at offset ${i}`);
    }
  }
  i++;
  ws();
  if (i !== text.length) {
    throw new Error(`unexpected text after the dict at offset ${i}`);
  }
  return dict;
}

async function readExactly(
  file: Deno.FsFile,
  path: string,
  n: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  await readInto(file, path, buf);
  return buf;
}

async function readInto(
  file: Deno.FsFile,
  path: string,
  buf: Uint8Array,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(buf.subarray(done));
    if (n === null) {
      fail(
        path,
        "is truncated: the file ended while reading it (was it changed meanwhile?)",
      );
    }
    done += n;
  }
}

function fail(path: string, message: string): never {
  // Messages quote header text from the file: escape its control characters (newlines,
  // terminal escape sequences) so that the error stays one printable line.
  throw new ForaError("io", `${path}: ${printable(message)}`);
}
