/**
 * What bench/gpu/pack.ts does to the CUDA provider before the trip (bench/gpu/fatbin.ts), on a
 * synthetic ELF file with a `.nv_fatbin` section laid out as nvcc writes it: cubins of other
 * GPU architectures are zeroed in place, everything else is left byte for byte.
 */
import assert from "node:assert/strict";
import { elfSections, FATBIN_MAGIC, fatbinEntries, KIND_CUBIN, KIND_PTX, trimFatbins } from "../../bench/gpu/fatbin.ts";

interface Entry {
  kind: number;
  arch: number;
  payload: Uint8Array;
}

/** One fatbin container: 16-byte header, then entries with 64-byte headers (arch at byte 28). */
function container(entries: Entry[]): Uint8Array {
  const body = entries.reduce((n, e) => n + 64 + e.payload.length, 0);
  const out = new Uint8Array(16 + body);
  const v = new DataView(out.buffer);
  v.setUint32(0, FATBIN_MAGIC, true);
  v.setUint16(4, 1, true);
  v.setUint16(6, 16, true);
  v.setBigUint64(8, BigInt(body), true);
  let p = 16;
  for (const e of entries) {
    v.setUint16(p, e.kind, true);
    v.setUint16(p + 2, 0x101, true);
    v.setUint32(p + 4, 64, true);
    v.setBigUint64(p + 8, BigInt(e.payload.length), true);
    v.setUint32(p + 28, e.arch, true);
    out.set(e.payload, p + 64);
    p += 64 + e.payload.length;
  }
  return out;
}

/** A minimal 64-bit ELF: header, .text filler, .nv_fatbin (containers 8-aligned), .shstrtab, section headers. */
function elfWith(containers: Uint8Array[]): Uint8Array {
  const pad8 = (n: number) => (n + 7) & ~7;
  const text = new Uint8Array(40).fill(0xcc);
  let fatSize = 0;
  for (const c of containers) fatSize = pad8(fatSize) + c.length;
  const names = new TextEncoder().encode("\0.text\0.nv_fatbin\0.shstrtab\0");
  const textOff = 64, fatOff = pad8(textOff + text.length), strOff = fatOff + pad8(fatSize), shOff = pad8(strOff + names.length);
  const out = new Uint8Array(shOff + 4 * 64);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setBigUint64(0x28, BigInt(shOff), true);
  v.setUint16(0x3a, 64, true);
  v.setUint16(0x3c, 4, true);
  v.setUint16(0x3e, 3, true);
  out.set(text, textOff);
  let p = fatOff;
  for (const c of containers) {
    p = fatOff + pad8(p - fatOff);
    out.set(c, p);
    p += c.length;
  }
  out.set(names, strOff);
  const sh = (i: number, name: number, off: number, size: number) => {
    v.setUint32(shOff + i * 64, name, true);
    v.setBigUint64(shOff + i * 64 + 0x18, BigInt(off), true);
    v.setBigUint64(shOff + i * 64 + 0x20, BigInt(size), true);
  };
  sh(1, 1, textOff, text.length);
  sh(2, 7, fatOff, fatSize);
  sh(3, 18, strOff, names.length);
  return out;
}

const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

Deno.test("fatbin: cubins of other architectures are zeroed; sm_90 cubins, PTX and all headers stay", () => {
  const elf = elfWith([
    container([
      { kind: KIND_CUBIN, arch: 80, payload: fill(100, 0x80) },
      { kind: KIND_CUBIN, arch: 90, payload: fill(60, 0x90) },
      { kind: KIND_PTX, arch: 75, payload: fill(30, 0x75) },
    ]),
    container([
      { kind: KIND_CUBIN, arch: 120, payload: fill(50, 0x12) },
      { kind: KIND_CUBIN, arch: 90, payload: fill(20, 0x91) },
    ]),
  ]);
  assert.deepEqual(elfSections(elf).map((s) => s.name), ["", ".text", ".nv_fatbin", ".shstrtab"]);
  const before = elf.slice();
  const { entries } = fatbinEntries(elf);
  const report = trimFatbins(elf, [90]);
  assert.equal(report.containers, 2);
  assert.equal(report.entries, 5);
  assert.equal(report.zeroedBytes, 150);
  assert.equal(report.keptBytes, 110);
  assert.deepEqual(report.byArch, { "cubin:80": 100, "cubin:90": 80, "ptx:75": 30, "cubin:120": 50 });
  for (const e of entries) {
    const now = elf.subarray(e.offset, e.offset + e.size);
    if (e.kind === KIND_CUBIN && e.arch !== 90) assert.ok(now.every((b) => b === 0), `sm_${e.arch} zeroed`);
    else assert.deepEqual(now, before.subarray(e.offset, e.offset + e.size), `${e.kind}:${e.arch} untouched`);
  }
  // outside the dropped payloads, not one byte changed
  const dropped = entries.filter((e) => e.kind === KIND_CUBIN && e.arch !== 90);
  for (let i = 0; i < elf.length; i++) {
    if (!dropped.some((e) => i >= e.offset && i < e.offset + e.size)) assert.equal(elf[i], before[i], `byte ${i}`);
  }
  // and the result still parses the same way
  assert.deepEqual(fatbinEntries(elf).entries, entries);
});

Deno.test("fatbin: refuses to trim away every kernel's code, and refuses layouts it does not understand", () => {
  const only80 = elfWith([container([{ kind: KIND_CUBIN, arch: 80, payload: fill(16, 1) }])]);
  assert.throws(() => trimFatbins(only80, [90]), /no cubin for architecture 90 and no PTX/);

  const broken = elfWith([container([{ kind: KIND_CUBIN, arch: 90, payload: fill(16, 1) }])]);
  const fat = elfSections(broken).find((s) => s.name === ".nv_fatbin")!;
  new DataView(broken.buffer).setBigUint64(fat.offset + 16 + 8, 1n << 40n, true); // entry size past its container
  assert.throws(() => fatbinEntries(broken), /runs past its container/);

  assert.throws(() => elfSections(new TextEncoder().encode("not an elf file at all, no sir")), /not a 64-bit little-endian ELF/);
});

Deno.test("fatbin: a library without .nv_fatbin is left alone", () => {
  const elf = elfWith([]);
  const names = new TextEncoder().encode("\0.text\0.nv_fatbix\0.shstrtab\0"); // rename the section
  const str = elfSections(elf).find((s) => s.name === ".shstrtab")!;
  elf.set(names, str.offset);
  assert.deepEqual(trimFatbins(elf, [90]), { containers: 0, entries: 0, keptBytes: 0, zeroedBytes: 0, byArch: {} });
});
