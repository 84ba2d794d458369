/**
 * The central directory of a zip archive, read strictly: PyTorch checkpoints are zip files
 * whose entries are STORED (not compressed), so each entry is a byte range of the file and
 * tensors are read lazily, one range at a time. The archive comes from a download, so this is
 * a security boundary: every size and offset is checked against the file before use, and
 * anything a PyTorch writer never produces (compression, encryption, multi-disk archives,
 * names that could leave a folder, entries sharing bytes) is refused.
 */
import { ForaError } from "../errors.ts";
import { openForRead, readAt } from "./safetensors.ts";

export interface ZipEntry {
  name: string;
  /** Absolute offset of the entry's data in the file. */
  offset: number;
  size: number;
}

export interface ZipArchive {
  path: string;
  fileSize: number;
  /** By name, in central-directory order. */
  entries: Map<string, ZipEntry>;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
/** Checkpoints hold a few thousand entries at most (one per storage); the cap bounds memory. */
export const MAX_ENTRIES = 1_000_000;
const MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024;

function fail(path: string, message: string): never {
  throw new ForaError("weights", `${path}: ${message}`);
}

/** Bytes 0..3 of every zip archive that starts with an entry (as torch.save writes them). */
export function hasZipMagic(prefix: Uint8Array): boolean {
  return prefix.length >= 4 && prefix[0] === 0x50 && prefix[1] === 0x4b && prefix[2] === 0x03 && prefix[3] === 0x04;
}

export async function readZipDirectory(path: string): Promise<ZipArchive> {
  const file = await openForRead(path);
  try {
    const fileSize = (await file.stat()).size;
    if (fileSize < EOCD_SIZE) fail(path, `is ${fileSize} bytes, too short for a zip archive (truncated?)`);
    const tailLength = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT);
    const tailStart = fileSize - tailLength;
    const tail = await readAt(file, path, tailStart, tailLength);
    const eocdAt = findEndRecord(tail);
    if (eocdAt < 0) fail(path, "no zip end-of-central-directory record (truncated archive, or not a zip file)");
    const dir = await locateDirectory(file, path, fileSize, tailStart + eocdAt, view(tail).subarray(eocdAt));
    const central = await readAt(file, path, dir.offset, dir.size);
    const headers = parseCentral(path, central, dir.count, fileSize);
    return { path, fileSize, entries: await locateData(file, path, headers, dir.offset) };
  } finally {
    file.close();
  }
}

/** The entry's bytes [start, start + length), checked against the entry. */
export async function readEntry(zip: ZipArchive, entry: ZipEntry, start = 0, length = entry.size - start): Promise<Uint8Array> {
  if (start < 0 || length < 0 || start + length > entry.size) {
    fail(zip.path, `entry ${JSON.stringify(entry.name)}: bytes ${start}..${start + length} lie beyond its ${entry.size} bytes`);
  }
  const file = await openForRead(zip.path);
  try {
    return await readAt(file, zip.path, entry.offset + start, length, entry.name);
  } finally {
    file.close();
  }
}

interface Bytes {
  u8: Uint8Array;
  dv: DataView;
  subarray(from: number, to?: number): Bytes;
}

function view(u8: Uint8Array): Bytes {
  return {
    u8,
    dv: new DataView(u8.buffer, u8.byteOffset, u8.byteLength),
    subarray: (from, to) => view(u8.subarray(from, to)),
  };
}

/** The last end record whose comment runs exactly to the end of the file (a stray signature inside a comment cannot match). */
function findEndRecord(tail: Uint8Array): number {
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (dv.getUint32(i, true) === EOCD_SIG && i + EOCD_SIZE + dv.getUint16(i + 20, true) === tail.length) return i;
  }
  return -1;
}

async function locateDirectory(
  file: Deno.FsFile,
  path: string,
  fileSize: number,
  eocdOffset: number,
  eocd: Bytes,
): Promise<{ offset: number; size: number; count: number }> {
  const { dv } = eocd;
  const disk = dv.getUint16(4, true), cdDisk = dv.getUint16(6, true);
  let count = dv.getUint16(10, true);
  const diskCount = dv.getUint16(8, true);
  let size = dv.getUint32(12, true), offset = dv.getUint32(16, true);
  let end = eocdOffset;
  const needs64 = count === 0xffff || size === 0xffffffff || offset === 0xffffffff;
  if (needs64) {
    if (eocdOffset < 20) fail(path, "zip64 archive without its locator (truncated?)");
    const loc = view(await readAt(file, path, eocdOffset - 20, 20));
    if (loc.dv.getUint32(0, true) !== ZIP64_LOCATOR_SIG) fail(path, "zip64 archive without its locator (corrupt)");
    const recordAt = safeU64(path, loc.dv, 8, "zip64 record offset");
    if (recordAt + 56 > eocdOffset - 20) fail(path, `zip64 end record at ${recordAt} lies beyond the directory's end`);
    const rec = view(await readAt(file, path, recordAt, 56));
    if (rec.dv.getUint32(0, true) !== ZIP64_EOCD_SIG) fail(path, "zip64 end record missing at the offset its locator gives (corrupt)");
    const total = safeU64(path, rec.dv, 32, "zip64 entry count");
    if (safeU64(path, rec.dv, 24, "zip64 entry count") !== total) fail(path, "split (multi-disk) zip archives are not supported");
    count = total;
    size = safeU64(path, rec.dv, 40, "central directory size");
    offset = safeU64(path, rec.dv, 48, "central directory offset");
    end = recordAt;
  } else if (disk !== 0 || cdDisk !== 0 || diskCount !== count) {
    fail(path, "split (multi-disk) zip archives are not supported");
  }
  if (count > MAX_ENTRIES) fail(path, `declares ${count} zip entries, more than the ${MAX_ENTRIES} a checkpoint can hold`);
  if (size > MAX_CENTRAL_DIRECTORY) fail(path, `central directory of ${size} bytes exceeds the ${MAX_CENTRAL_DIRECTORY}-byte cap`);
  if (offset + size > end || offset > fileSize) {
    fail(path, `central directory [${offset}, ${offset + size}) runs past its end record at ${end} (truncated or corrupt archive)`);
  }
  return { offset, size, count };
}

function safeU64(path: string, dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(path, `${what} ${v} is impossibly large (corrupt archive)`);
  return Number(v);
}

/** A central directory record: where the entry's local header is. */
interface CentralRecord {
  name: string;
  header: number;
  size: number;
}

function parseCentral(path: string, central: Uint8Array, count: number, fileSize: number): Map<string, CentralRecord> {
  const b = view(central);
  const entries = new Map<string, CentralRecord>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > central.length || b.dv.getUint32(at, true) !== CENTRAL_SIG) {
      fail(path, `central directory entry ${i} of ${count} is missing or corrupt`);
    }
    const flags = b.dv.getUint16(at + 8, true);
    const method = b.dv.getUint16(at + 10, true);
    let csize = b.dv.getUint32(at + 20, true), usize = b.dv.getUint32(at + 24, true);
    const nameLen = b.dv.getUint16(at + 28, true), extraLen = b.dv.getUint16(at + 30, true), commentLen = b.dv.getUint16(at + 32, true);
    const startDisk = b.dv.getUint16(at + 34, true);
    let header = b.dv.getUint32(at + 42, true);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > central.length) fail(path, `central directory entry ${i} runs past the directory (corrupt)`);
    const name = entryName(path, central.subarray(at + 46, at + 46 + nameLen));
    // ZIP64 extended information: the 8-byte values of whichever 4-byte fields are saturated, in this order.
    const extra = b.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen);
    const wide = [usize === 0xffffffff, csize === 0xffffffff, header === 0xffffffff];
    if (wide.some((w) => w)) {
      const z = findExtra(extra, 0x0001);
      const needed = wide.filter((w) => w).length * 8;
      if (z === undefined || z.u8.length < needed) fail(path, `entry ${JSON.stringify(name)}: zip64 sizes missing (corrupt)`);
      let o = 0;
      const take = () => {
        const v = safeU64(path, z.dv, o, `entry ${JSON.stringify(name)} size`);
        o += 8;
        return v;
      };
      if (wide[0]) usize = take();
      if (wide[1]) csize = take();
      if (wide[2]) header = take();
    }
    const quoted = JSON.stringify(name);
    if (flags & 0x1) fail(path, `entry ${quoted} is encrypted; fora reads only unencrypted checkpoints`);
    if (startDisk !== 0 && startDisk !== 0xffff) fail(path, "split (multi-disk) zip archives are not supported");
    if (method !== 0) {
      fail(
        path,
        `entry ${quoted} is compressed (zip method ${method}); PyTorch checkpoints store entries uncompressed: ` +
          `re-save it with torch.save, or unzip and re-zip it with "zip -0"`,
      );
    }
    if (csize !== usize) fail(path, `entry ${quoted} is stored but declares ${csize} bytes stored and ${usize} unpacked (corrupt)`);
    if (header + 30 + usize > fileSize) {
      fail(path, `entry ${quoted} declares ${usize} bytes at ${header}, beyond the ${fileSize}-byte file`);
    }
    if (entries.has(name)) fail(path, `holds two entries named ${quoted}`);
    entries.set(name, { name, header, size: usize });
    at = next;
  }
  return entries;
}

function findExtra(extra: Bytes, id: number): Bytes | undefined {
  let at = 0;
  while (at + 4 <= extra.u8.length) {
    const tag = extra.dv.getUint16(at, true), len = extra.dv.getUint16(at + 2, true);
    if (at + 4 + len > extra.u8.length) return undefined;
    if (tag === id) return extra.subarray(at + 4, at + 4 + len);
    at += 4 + len;
  }
  return undefined;
}

/** A name that stays inside the archive's folder: relative, no `..`, no backslashes or control characters. */
function entryName(path: string, raw: Uint8Array): string {
  let name: string;
  try {
    name = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    fail(path, "holds a zip entry whose name is not valid UTF-8");
  }
  const shown = JSON.stringify(name).replace(/[\u007f-\u009f\u2028\u2029]/g, "?");
  // deno-lint-ignore no-control-regex
  if (name === "" || /[\u0000-\u001f\\]/.test(name) || /^[a-zA-Z]:/.test(name)) fail(path, `zip entry name ${shown} is not a plain path`);
  if (name.startsWith("/")) fail(path, `zip entry ${shown} has an absolute path`);
  if (name.split("/").some((s) => s === ".." || s === ".")) fail(path, `zip entry ${shown} points outside the archive's folder`);
  return name;
}

/**
 * Reads each local header to find where the entry's data starts, and refuses entries whose
 * data overlap each other or the central directory: overlapping entries are how "zip bombs"
 * make a small file claim far more data than it holds.
 */
async function locateData(
  file: Deno.FsFile,
  path: string,
  records: Map<string, CentralRecord>,
  directoryAt: number,
): Promise<Map<string, ZipEntry>> {
  const entries = new Map<string, ZipEntry>();
  const spans: { name: string; start: number; end: number }[] = [];
  for (const e of records.values()) {
    if (e.header + 30 > directoryAt) fail(path, `entry ${JSON.stringify(e.name)}: local header lies beyond the entries (corrupt)`);
    const local = view(await readAt(file, path, e.header, 30));
    if (local.dv.getUint32(0, true) !== LOCAL_SIG) fail(path, `entry ${JSON.stringify(e.name)}: no local header at ${e.header} (corrupt)`);
    const nameLen = local.dv.getUint16(26, true), extraLen = local.dv.getUint16(28, true);
    const start = e.header + 30 + nameLen + extraLen;
    if (start + e.size > directoryAt) {
      fail(path, `entry ${JSON.stringify(e.name)}: its ${e.size} bytes run past the entries into the central directory (truncated?)`);
    }
    const localName = await readAt(file, path, e.header + 30, nameLen);
    if (new TextDecoder().decode(localName) !== e.name) {
      fail(path, `entry ${JSON.stringify(e.name)}: local header names another file (corrupt)`);
    }
    entries.set(e.name, { name: e.name, offset: start, size: e.size });
    spans.push({ name: e.name, start: e.header, end: start + e.size });
  }
  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].start < spans[i - 1].end) {
      fail(path, `zip entries ${JSON.stringify(spans[i - 1].name)} and ${JSON.stringify(spans[i].name)} share bytes (a zip bomb?)`);
    }
  }
  return entries;
}
