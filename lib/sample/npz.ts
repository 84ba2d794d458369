/**
 * NumPy `.npz` files: a zip archive of `.npy` arrays, one entry `NAME.npy` per array, the
 * format `np.savez` writes and the ADM / guided-diffusion evaluation suite and DiT's
 * `sample_ddp.py` exchange samples in (`arr_0`: uint8 images [N, H, W, C]; `arr_1`: int64
 * labels [N]).
 *
 * Writing streams: each array's size is known from its shape before its bytes come, so
 * an entry's local header is written first with its sizes, the bytes follow in chunks,
 * and the CRC-32 is patched into the header at the end. Entries are stored (no
 * compression), as `np.savez` does. ZIP64 records are written where a size or offset does
 * not fit in 32 bits (a merged 50,000-image file at 256x256 is 9.8 GB), or always with
 * `forceZip64` (tests). Every timestamp is 1980-01-01 00:00, so equal arrays give equal
 * files byte for byte.
 *
 * Reading is for files fora wrote, from untrusted disks: the archive is parsed from its
 * end-of-central-directory record, every offset and size is checked against the bytes
 * at hand before use, only stored entries are accepted, and each `.npy` header is
 * parsed without eval and checked against its entry's size before any array is built.
 */
import { crc32 } from "node:zlib";
import { ForaError, printable } from "../errors.ts";
import { writeAll } from "../io/atomic.ts";
import { npyHeader, npyPreamble, parseHeaderDict, pythonTuple } from "../io/npy.ts";

/** The dtypes fora writes and reads in .npz files. */
export type NpzDtype = "|u1" | "<i8" | "<f4";

const ITEM_SIZE: Record<NpzDtype, number> = { "|u1": 1, "<i8": 8, "<f4": 4 };

export interface NpzArray {
  dtype: NpzDtype;
  shape: number[];
  /** The raw little-endian bytes, C order: product(shape) * itemsize of them. */
  bytes: Uint8Array;
}

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const LOCATOR_SIG = 0x07064b50;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;
/** 1980-01-01 in MS-DOS date format (year-1980 << 9 | month << 5 | day); time 00:00:00. */
const DOS_DATE = (1 << 5) | 1;

// ---- .npy headers --------------------------------------------------------------------------

/** Bytes of an array of `shape` and `dtype`, or NaN when that is not a safe integer. */
export function arrayBytes(dtype: NpzDtype, shape: readonly number[]): number {
  let n = ITEM_SIZE[dtype];
  for (const d of shape) n *= d;
  return Number.isSafeInteger(n) ? n : NaN;
}

// ---- writing -------------------------------------------------------------------------------

interface CentralEntry {
  name: Uint8Array;
  offset: number;
  size: number;
  crc: number;
  zip64: boolean;
}

/** Writes an .npz archive array by array; see `npzWriter`. */
export interface NpzWriter {
  /** Starts array `name` (stored as `name.npy`); closes the array before it. */
  begin(name: string, dtype: NpzDtype, shape: readonly number[]): Promise<void>;
  /** The next bytes of the open array. */
  write(chunk: Uint8Array): Promise<void>;
  /** Closes the last array and writes the central directory. */
  finish(): Promise<void>;
}

/**
 * An .npz writer on `file` (open for writing, positioned at 0): `begin(name, dtype, shape)`,
 * then `write(chunk)` until exactly the array's bytes have been given, then the next
 * `begin` or `finish()`.
 */
export function npzWriter(file: Deno.FsFile, options: { forceZip64?: boolean } = {}): NpzWriter {
  const forceZip64 = options.forceZip64 ?? false;
  const entries: CentralEntry[] = [];
  let position = 0;
  let open: (CentralEntry & { left: number }) | null = null;

  const put = async (bytes: Uint8Array) => {
    await writeAll(file, bytes);
    position += bytes.length;
  };
  const data = async (chunk: Uint8Array) => {
    const e = open;
    if (!e) throw new Error("npzWriter.write: no array begun");
    if (chunk.length > e.left) throw new Error(`npzWriter: ${chunk.length} bytes given, ${e.left} left in the array`);
    e.crc = crc32(chunk, e.crc);
    e.left -= chunk.length;
    await put(chunk);
  };
  const close = async () => {
    const e = open;
    if (!e) return;
    if (e.left !== 0) throw new Error(`npzWriter: array ended ${e.left} bytes short`);
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, e.crc >>> 0, true);
    await file.seek(e.offset + 14, Deno.SeekMode.Start);
    await writeAll(file, crc);
    await file.seek(position, Deno.SeekMode.Start);
    entries.push(e);
    open = null;
  };

  return {
    async begin(name, dtype, shape) {
      await close();
      const dataBytes = arrayBytes(dtype, shape);
      if (Number.isNaN(dataBytes)) throw new RangeError(`npzWriter: array ${name} of shape ${pythonTuple(shape)} is too large`);
      const header = npyHeader(dtype, shape);
      const size = header.length + dataBytes;
      const nameBytes = new TextEncoder().encode(`${name}.npy`);
      const offset = position;
      const zip64 = forceZip64 || size >= MAX32 || offset >= MAX32;
      await put(localHeader(nameBytes, size, zip64));
      open = { name: nameBytes, offset, size, crc: 0, zip64, left: size };
      await data(header);
    },
    write: data,
    async finish() {
      await close();
      const cdOffset = position;
      for (const e of entries) await put(centralHeader(e));
      const cdSize = position - cdOffset;
      const count = entries.length;
      const zip64 = forceZip64 || cdOffset >= MAX32 || cdSize >= MAX32 || count >= MAX16;
      if (zip64) await put(zip64End(count, cdSize, cdOffset, position));
      const end = new Uint8Array(22);
      const v = new DataView(end.buffer);
      v.setUint32(0, EOCD_SIG, true);
      v.setUint16(8, zip64 ? MAX16 : count, true);
      v.setUint16(10, zip64 ? MAX16 : count, true);
      v.setUint32(12, zip64 ? MAX32 : cdSize, true);
      v.setUint32(16, zip64 ? MAX32 : cdOffset, true);
      await put(end);
    },
  };
}

/** A stored entry's local header; the CRC-32 (bytes 14..17) is patched in when the entry closes. */
function localHeader(name: Uint8Array, size: number, zip64: boolean): Uint8Array {
  const local = new Uint8Array(30 + name.length + (zip64 ? 20 : 0));
  const v = new DataView(local.buffer);
  v.setUint32(0, LOCAL_SIG, true);
  v.setUint16(4, zip64 ? 45 : 20, true); // version needed
  v.setUint16(6, 0, true); // flags
  v.setUint16(8, 0, true); // stored
  v.setUint16(10, 0, true); // time
  v.setUint16(12, DOS_DATE, true);
  v.setUint32(14, 0, true); // CRC-32
  v.setUint32(18, zip64 ? MAX32 : size, true);
  v.setUint32(22, zip64 ? MAX32 : size, true);
  v.setUint16(26, name.length, true);
  v.setUint16(28, zip64 ? 20 : 0, true);
  local.set(name, 30);
  if (zip64) {
    const x = 30 + name.length;
    v.setUint16(x, 0x0001, true);
    v.setUint16(x + 2, 16, true);
    v.setBigUint64(x + 4, BigInt(size), true);
    v.setBigUint64(x + 12, BigInt(size), true);
  }
  return local;
}

/** The ZIP64 end-of-central-directory record at `at`, and its locator. */
function zip64End(count: number, cdSize: number, cdOffset: number, at: number): Uint8Array {
  const r = new Uint8Array(56 + 20);
  const v = new DataView(r.buffer);
  v.setUint32(0, EOCD64_SIG, true);
  v.setBigUint64(4, 44n, true); // size of the rest of the record
  v.setUint16(12, 45, true);
  v.setUint16(14, 45, true);
  v.setUint32(16, 0, true);
  v.setUint32(20, 0, true);
  v.setBigUint64(24, BigInt(count), true);
  v.setBigUint64(32, BigInt(count), true);
  v.setBigUint64(40, BigInt(cdSize), true);
  v.setBigUint64(48, BigInt(cdOffset), true);
  v.setUint32(56, LOCATOR_SIG, true);
  v.setUint32(60, 0, true);
  v.setBigUint64(64, BigInt(at), true);
  v.setUint32(72, 1, true);
  return r;
}

function centralHeader(e: CentralEntry): Uint8Array {
  const extra = e.zip64 ? 28 : 0;
  const out = new Uint8Array(46 + e.name.length + extra);
  const v = new DataView(out.buffer);
  v.setUint32(0, CENTRAL_SIG, true);
  v.setUint16(4, 45, true); // made by: spec 4.5, MS-DOS attributes
  v.setUint16(6, e.zip64 ? 45 : 20, true);
  v.setUint16(8, 0, true);
  v.setUint16(10, 0, true);
  v.setUint16(12, 0, true);
  v.setUint16(14, DOS_DATE, true);
  v.setUint32(16, e.crc >>> 0, true);
  v.setUint32(20, e.zip64 ? MAX32 : e.size, true);
  v.setUint32(24, e.zip64 ? MAX32 : e.size, true);
  v.setUint16(28, e.name.length, true);
  v.setUint16(30, extra, true);
  v.setUint16(32, 0, true); // comment
  v.setUint16(34, 0, true); // disk
  v.setUint16(36, 0, true); // internal attributes
  v.setUint32(38, 0, true); // external attributes
  v.setUint32(42, e.zip64 ? MAX32 : e.offset, true);
  out.set(e.name, 46);
  if (e.zip64) {
    const x = 46 + e.name.length;
    v.setUint16(x, 0x0001, true);
    v.setUint16(x + 2, 24, true);
    v.setBigUint64(x + 4, BigInt(e.size), true);
    v.setBigUint64(x + 12, BigInt(e.size), true);
    v.setBigUint64(x + 20, BigInt(e.offset), true);
  }
  return out;
}

// ---- reading -------------------------------------------------------------------------------

/**
 * The arrays of an .npz archive held in `bytes`, by name (without `.npy`). `where` names the
 * file in errors. Throws ForaError("io") for anything that is not a well-formed archive of
 * stored, well-formed .npy entries of the dtypes fora uses.
 */
export function readNpz(bytes: Uint8Array, where: string): Map<string, NpzArray> {
  const fail = (msg: string): never => {
    throw new ForaError("io", `${where}: ${printable(msg)}`);
  };
  const size = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => {
    const n = view.getBigUint64(at, true);
    return n > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(n);
  };
  if (size < 22) fail(`is ${size} bytes, too short for a .npz (zip) archive`);
  if (u32(0) !== LOCAL_SIG && u32(0) !== EOCD_SIG) fail("is not a .npz file (it does not start like a zip archive)");
  // The end-of-central-directory record: 22 bytes plus a comment of at most 65,535.
  let eocd = -1;
  for (let at = size - 22; at >= Math.max(0, size - 22 - MAX16); at--) {
    if (u32(at) === EOCD_SIG && at + 22 + u16(at + 20) === size) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) fail("has no zip end-of-central-directory record; the file is truncated or not a .npz");
  let count = u16(eocd + 10);
  let cdSize = u32(eocd + 12);
  let cdOffset = u32(eocd + 16);
  if (u16(eocd + 4) !== 0 || u16(eocd + 6) !== 0 || u16(eocd + 8) !== count) fail("is a multi-disk zip archive; not supported");
  if (count === MAX16 || cdSize === MAX32 || cdOffset === MAX32) {
    const loc = eocd - 20;
    if (loc < 0 || u32(loc) !== LOCATOR_SIG) fail("has ZIP64 markers but no ZIP64 locator; the file is corrupt");
    const at = u64(loc + 8);
    if (!(at + 56 <= loc) || u32(at) !== EOCD64_SIG) {
      fail("ZIP64 end-of-central-directory record is missing or out of place; the file is corrupt");
    }
    count = u64(at + 32);
    cdSize = u64(at + 40);
    cdOffset = u64(at + 48);
    if (u64(at + 24) !== count) fail("is a multi-disk zip archive; not supported");
  }
  if (!(cdOffset + cdSize <= eocd)) fail("central directory lies outside the file; the file is truncated or corrupt");
  if (count * 46 > cdSize) fail(`central directory of ${cdSize} bytes cannot hold ${count} entries; the file is corrupt`);
  const arrays = new Map<string, NpzArray>();
  let at = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdEnd || u32(at) !== CENTRAL_SIG) fail(`central directory entry ${i} is corrupt`);
    const flags = u16(at + 8), method = u16(at + 10);
    const crc = u32(at + 16);
    let csize = u32(at + 20), usize = u32(at + 24);
    const nameLen = u16(at + 28), extraLen = u16(at + 30), commentLen = u16(at + 32);
    let offset = u32(at + 42);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) fail(`central directory entry ${i} runs past the directory; the file is corrupt`);
    const nameBytes = bytes.subarray(at + 46, at + 46 + nameLen);
    let name: string;
    try {
      name = new TextDecoder("utf-8", { fatal: true }).decode(nameBytes);
    } catch {
      return fail(`entry ${i} has a name that is not UTF-8; the file is corrupt`);
    }
    const shown = JSON.stringify(name);
    if (usize === MAX32 || csize === MAX32 || offset === MAX32) {
      // ZIP64 extended information: the 64-bit values of the fields set to 0xFFFFFFFF, in order.
      let x = at + 46 + nameLen;
      const xEnd = x + extraLen;
      let found = false;
      while (x + 4 <= xEnd) {
        const id = u16(x), len = u16(x + 2);
        if (x + 4 + len > xEnd) break;
        if (id === 0x0001) {
          let p = x + 4;
          const take = () => {
            if (p + 8 > x + 4 + len) fail(`entry ${shown}: ZIP64 extra field is too short; the file is corrupt`);
            const n = u64(p);
            p += 8;
            return n;
          };
          if (usize === MAX32) usize = take();
          if (csize === MAX32) csize = take();
          if (offset === MAX32) offset = take();
          found = true;
          break;
        }
        x += 4 + len;
      }
      if (!found) fail(`entry ${shown} has ZIP64 markers but no ZIP64 extra field; the file is corrupt`);
    }
    if (method !== 0) {
      fail(`entry ${shown} is compressed (method ${method}); fora reads stored .npz files (np.savez, not np.savez_compressed)`);
    }
    if (flags & 0x1) fail(`entry ${shown} is encrypted; not supported`);
    if (csize !== usize) fail(`entry ${shown} is stored but its sizes differ (${csize} vs ${usize}); the file is corrupt`);
    if (!name.endsWith(".npy") || name.length === 4) fail(`entry ${shown} is not a .npy array; not an .npz written by NumPy or fora`);
    const key = name.slice(0, -4);
    if (arrays.has(key)) fail(`holds array ${key} twice; the file is corrupt`);
    if (!(offset + 30 <= cdOffset) || u32(offset) !== LOCAL_SIG) {
      fail(`entry ${shown}: local header missing at offset ${offset}; the file is corrupt`);
    }
    const dataStart = offset + 30 + u16(offset + 26) + u16(offset + 28);
    if (!(dataStart + usize <= cdOffset)) fail(`entry ${shown} runs past the end of its data area; the file is truncated or corrupt`);
    const data = bytes.subarray(dataStart, dataStart + usize);
    if ((crc32(data) >>> 0) !== crc) fail(`entry ${shown} fails its CRC-32 check; the file is corrupt`);
    arrays.set(key, parseNpy(data, `${where}: array ${key}`));
    at = next;
  }
  return arrays;
}

/** One .npy file held in `bytes`: its header checked against its length before use. */
export function parseNpy(bytes: Uint8Array, where: string): NpzArray {
  const fail = (msg: string): never => {
    throw new ForaError("io", `${where}: ${printable(msg)}`);
  };
  const { major, headerStart: start, headerLength } = npyPreamble(bytes.subarray(0, 12), bytes.length, [1, 2, 3], fail);
  if (start + headerLength > bytes.length) fail(`header length ${headerLength} runs past the end of the ${bytes.length}-byte array`);
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(bytes.subarray(start, start + headerLength));
  } catch {
    return fail("header is not text; the file is corrupt");
  }
  const header = checkHeader(text, fail);
  const dataBytes = arrayBytes(header.dtype, header.shape);
  const have = bytes.length - start - headerLength;
  if (dataBytes !== have) {
    fail(
      `shape ${pythonTuple(header.shape)} of ${header.dtype} needs ${
        Number.isNaN(dataBytes) ? "an impossible number of" : dataBytes
      } bytes, the array holds ${have}`,
    );
  }
  return { dtype: header.dtype, shape: header.shape, bytes: bytes.subarray(start + headerLength) };
}

/**
 * The dict literal of a .npy header: exactly the keys descr, fortran_order and shape, in any
 * order; descr one of fora's dtypes, fortran_order False, shape a tuple of at most 32 integers.
 */
function checkHeader(text: string, fail: (msg: string) => never): { dtype: NpzDtype; shape: number[] } {
  const fields = parseHeaderDict(text, fail);
  const keys = [...fields.keys()].sort().join(", ");
  if (keys !== "descr, fortran_order, shape") fail("header must have the keys descr, fortran_order and shape");
  const descr = fields.get("descr"), fortran = fields.get("fortran_order"), shape = fields.get("shape");
  if (descr !== "|u1" && descr !== "<i8" && descr !== "<f4") {
    const alias = descr === "<u1" || descr === "u1" ? " (write uint8 as '|u1')" : "";
    fail(`dtype ${JSON.stringify(descr)} is not one fora reads (uint8 '|u1', int64 '<i8', float32 '<f4')${alias}`);
  }
  if (fortran !== false) fail("is stored in Fortran order; save it with np.ascontiguousarray");
  if (!Array.isArray(shape) || shape.length > 32 || !shape.every((d) => typeof d === "number")) {
    fail("header shape is not a tuple of at most 32 integers");
  }
  return { dtype: descr as NpzDtype, shape: shape as number[] };
}
