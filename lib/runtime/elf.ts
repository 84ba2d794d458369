/** Reading shared libraries without loading them: an ELF file's DT_NEEDED list, and a string search. */
import { Buffer } from "node:buffer";

/** DT_NEEDED entries of a 64-bit little-endian ELF file, read from its headers only. */
export function elfNeeded(path: string): string[] | null {
  let file: Deno.FsFile | null = null;
  try {
    file = Deno.openSync(path, { read: true });
    const f = file;
    const read = (offset: number, length: number): DataView => {
      const buf = new Uint8Array(length);
      f.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = f.readSync(buf.subarray(got));
        if (n === null) throw new Error("short read");
        got += n;
      }
      return new DataView(buf.buffer);
    };
    const eh = read(0, 64);
    if (eh.getUint32(0) !== 0x7f454c46 || eh.getUint8(4) !== 2 || eh.getUint8(5) !== 1) return null;
    const shoff = Number(eh.getBigUint64(0x28, true)), shentsize = eh.getUint16(0x3a, true), shnum = eh.getUint16(0x3c, true);
    if (shentsize < 64 || shnum === 0 || shnum > 4096) return null;
    const sh = read(shoff, shentsize * shnum);
    const section = (i: number) => ({
      type: sh.getUint32(i * shentsize + 4, true),
      offset: Number(sh.getBigUint64(i * shentsize + 0x18, true)),
      size: Number(sh.getBigUint64(i * shentsize + 0x20, true)),
      link: sh.getUint32(i * shentsize + 0x28, true),
    });
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (s.type !== 6 /* SHT_DYNAMIC */) continue;
      const str = section(s.link);
      if (s.size > 1 << 20 || str.size > 16 << 20) return null;
      const dyn = read(s.offset, s.size), strtab = new Uint8Array(read(str.offset, str.size).buffer);
      const out: string[] = [];
      for (let p = 0; p + 16 <= s.size; p += 16) {
        const tag = dyn.getBigInt64(p, true);
        if (tag === 0n) break;
        if (tag !== 1n /* DT_NEEDED */) continue;
        const at = Number(dyn.getBigUint64(p + 8, true));
        const end = strtab.indexOf(0, at);
        out.push(new TextDecoder().decode(strtab.subarray(at, end < 0 ? undefined : end)));
      }
      return out;
    }
    return [];
  } catch {
    return null;
  } finally {
    file?.close();
  }
}

/** Scans the file, a window at a time, for `\0text\0`. */
export function holdsString(path: string, text: string, windowBytes = 16 << 20): boolean {
  const needle = Buffer.from(`\0${text}\0`, "latin1");
  let file: Deno.FsFile | null = null;
  try {
    file = Deno.openSync(path, { read: true });
    const window = Buffer.alloc(Math.max(windowBytes, 2 * text.length + 4));
    let carry = 0;
    for (;;) {
      const n = file.readSync(window.subarray(carry));
      if (n === null) return false;
      const filled = carry + n;
      if (window.subarray(0, filled).indexOf(needle) >= 0) return true;
      carry = Math.min(needle.length - 1, filled);
      window.copy(window, 0, filled - carry, filled);
    }
  } catch {
    return false;
  } finally {
    file?.close();
  }
}
