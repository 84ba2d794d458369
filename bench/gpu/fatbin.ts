/**
 * Shrinks a CUDA library for the trip to one known GPU: in its `.nv_fatbin` section, the
 * machine code (cubin) built for other GPU architectures is zeroed, so the file compresses
 * to a fraction. Nothing moves: every container and entry header stays as it was, only
 * the payload bytes of the dropped cubins become zeros. The CUDA driver picks, per
 * kernel, the cubin whose architecture matches the device (SASS does not run across major
 * architectures) or JIT-compiles PTX; it never reads the others. PTX entries are always kept.
 *
 * For onnxruntime's CUDA provider (ORT 1.29.0, CUDA 13): 166 MB of its 230 MB are cubins
 * for sm_75/80/86/89/90/120; keeping only sm_90 (H100, H200) takes the xz-compressed file
 * from 165 MB to 38 MB.
 *
 * Fatbin layout (as nvcc writes it; checked against the bytes, entries walked and sized):
 *   container: u32 magic 0xBA55ED50, u16 version, u16 header size, u64 size of the entries
 *   entry:     u16 kind (1 PTX, 2 cubin), u16 version, u32 header size, u64 payload size,
 *              ... u32 architecture (e.g. 90) at byte 28 ...; payload follows the header
 * Anything that does not parse that way is refused (the file is left alone).
 */

export const FATBIN_MAGIC = 0xba55ed50;
export const KIND_PTX = 1;
export const KIND_CUBIN = 2;

export interface FatbinEntry {
  kind: number;
  arch: number;
  /** Offset of the payload in the file. */
  offset: number;
  size: number;
}

export interface TrimReport {
  containers: number;
  entries: number;
  keptBytes: number;
  zeroedBytes: number;
  /** Payload bytes per `${kind}:${arch}`, e.g. "cubin:90". */
  byArch: Record<string, number>;
}

interface Section {
  name: string;
  offset: number;
  size: number;
}

/** Section headers of a 64-bit little-endian ELF image. */
export function elfSections(bytes: Uint8Array): Section[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) throw new Error("not a 64-bit little-endian ELF file");
  const shoff = Number(v.getBigUint64(0x28, true)), entsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true), shstrndx = v.getUint16(0x3e, true);
  if (shoff + entsize * shnum > bytes.length) throw new Error("ELF section headers lie outside the file");
  const raw = (i: number) => ({
    nameAt: v.getUint32(shoff + i * entsize, true),
    offset: Number(v.getBigUint64(shoff + i * entsize + 0x18, true)),
    size: Number(v.getBigUint64(shoff + i * entsize + 0x20, true)),
  });
  const strtab = raw(shstrndx);
  const dec = new TextDecoder();
  return Array.from({ length: shnum }, (_, i) => {
    const s = raw(i);
    const at = strtab.offset + s.nameAt;
    const end = bytes.indexOf(0, at);
    return { name: dec.decode(bytes.subarray(at, end)), offset: s.offset, size: s.size };
  });
}

/** Every entry of every fatbin container in the file's `.nv_fatbin` section. */
export function fatbinEntries(bytes: Uint8Array): { containers: number; entries: FatbinEntry[] } {
  const sec = elfSections(bytes).find((s) => s.name === ".nv_fatbin");
  if (!sec) return { containers: 0, entries: [] };
  if (sec.offset + sec.size > bytes.length) throw new Error(".nv_fatbin lies outside the file");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = sec.offset + sec.size, entries: FatbinEntry[] = [];
  let pos = sec.offset, containers = 0;
  while (pos + 16 <= end) {
    if (v.getUint32(pos, true) !== FATBIN_MAGIC) {
      // containers are 8-byte aligned; padding between them is zeros
      if (v.getUint32(pos, true) !== 0 || v.getUint32(pos + 4, true) !== 0) throw new Error(`unexpected bytes in .nv_fatbin at ${pos}`);
      pos += 8;
      continue;
    }
    const headerSize = v.getUint16(pos + 6, true), fatSize = Number(v.getBigUint64(pos + 8, true));
    let p = pos + headerSize;
    const cend = p + fatSize;
    if (headerSize < 16 || cend > end) throw new Error(`fatbin container at ${pos} runs past its section`);
    containers++;
    while (p < cend) {
      const kind = v.getUint16(p, true), ehs = v.getUint32(p + 4, true), size = Number(v.getBigUint64(p + 8, true));
      if (ehs < 32 || p + ehs + size > cend) throw new Error(`fatbin entry at ${p} runs past its container`);
      entries.push({ kind, arch: v.getUint32(p + 28, true), offset: p + ehs, size });
      p += ehs + size;
    }
    pos = sec.offset + ((cend - sec.offset + 7) & ~7); // the next container starts 8-aligned
  }
  return { containers, entries };
}

/** Zeroes, in place, the payload of every cubin whose architecture is not in `keep`. */
export function trimFatbins(bytes: Uint8Array, keep: readonly number[]): TrimReport {
  const { containers, entries } = fatbinEntries(bytes);
  const report: TrimReport = { containers, entries: entries.length, keptBytes: 0, zeroedBytes: 0, byArch: {} };
  for (const e of entries) {
    const key = `${e.kind === KIND_PTX ? "ptx" : e.kind === KIND_CUBIN ? "cubin" : `kind${e.kind}`}:${e.arch}`;
    report.byArch[key] = (report.byArch[key] ?? 0) + e.size;
    if (e.kind === KIND_CUBIN && !keep.includes(e.arch)) {
      bytes.fill(0, e.offset, e.offset + e.size);
      report.zeroedBytes += e.size;
    } else report.keptBytes += e.size;
  }
  if (entries.length > 0 && !entries.some((e) => e.kind === KIND_PTX || keep.includes(e.arch))) {
    throw new Error(`no cubin for architecture ${keep.join("/")} and no PTX: trimming would leave no usable code`);
  }
  return report;
}
