/**
 * Zip archives written byte by byte, so tests can produce what no zip library writes: names
 * with `../`, entries sharing bytes, lying sizes, ZIP64 records, compressed methods.
 */
import { concat } from "./helpers.ts";

export interface RawEntry {
  name: string;
  data: Uint8Array;
  /** Compression method recorded (the data is written as given). */
  method?: number;
  flags?: number;
  /** Sizes recorded in the central directory (default: the data's length). */
  declaredSize?: number;
  /** Record this entry's sizes and offset in a ZIP64 extra field. */
  zip64?: boolean;
  /** Point the central record at this offset instead of the entry's own local header. */
  headerAt?: number;
}

const enc = new TextEncoder();

function le(bytes: number, value: number | bigint): Uint8Array {
  const out = new Uint8Array(bytes);
  const dv = new DataView(out.buffer);
  if (bytes === 2) dv.setUint16(0, Number(value), true);
  else if (bytes === 4) dv.setUint32(0, Number(value), true);
  else dv.setBigUint64(0, BigInt(value), true);
  return out;
}

/** A stored zip archive; `zip64End` adds ZIP64 end records (as writers do for huge archives). */
export function buildZip(entries: RawEntry[], opts: { zip64End?: boolean } = {}): Uint8Array {
  const locals: Uint8Array[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const local = concat(
      le(4, 0x04034b50),
      le(2, 20),
      le(2, e.flags ?? 0),
      le(2, e.method ?? 0),
      le(4, 0),
      le(4, 0),
      le(4, e.data.length),
      le(4, e.data.length),
      le(2, name.length),
      le(2, 0),
      name,
      e.data,
    );
    offsets.push(at);
    locals.push(local);
    at += local.length;
  }
  const central: Uint8Array[] = [];
  entries.forEach((e, i) => {
    const name = enc.encode(e.name);
    const size = e.declaredSize ?? e.data.length;
    const header = e.headerAt ?? offsets[i];
    const extra = e.zip64 ? concat(le(2, 1), le(2, 24), le(8, size), le(8, size), le(8, header)) : new Uint8Array(0);
    central.push(concat(
      le(4, 0x02014b50),
      le(2, 45),
      le(2, 20),
      le(2, e.flags ?? 0),
      le(2, e.method ?? 0),
      le(4, 0),
      le(4, 0),
      le(4, e.zip64 ? 0xffffffff : size),
      le(4, e.zip64 ? 0xffffffff : size),
      le(2, name.length),
      le(2, extra.length),
      le(2, 0),
      le(2, 0),
      le(2, 0),
      le(4, 0),
      le(4, e.zip64 ? 0xffffffff : header),
      name,
      extra,
    ));
  });
  const cd = concat(...central);
  const cdAt = at;
  const tail: Uint8Array[] = [];
  if (opts.zip64End) {
    const recordAt = cdAt + cd.length;
    tail.push(
      concat(le(4, 0x06064b50), le(8, 44), le(2, 45), le(2, 45), le(4, 0), le(4, 0)),
      concat(le(8, entries.length), le(8, entries.length), le(8, cd.length), le(8, cdAt)),
      concat(le(4, 0x07064b50), le(4, 0), le(8, recordAt), le(4, 1)),
    );
  }
  const n = opts.zip64End ? 0xffff : entries.length;
  tail.push(concat(
    le(4, 0x06054b50),
    le(2, 0),
    le(2, 0),
    le(2, n),
    le(2, n),
    le(4, opts.zip64End ? 0xffffffff : cd.length),
    le(4, opts.zip64End ? 0xffffffff : cdAt),
    le(2, 0),
  ));
  return concat(...locals, cd, ...tail);
}

/** A torch.save-shaped archive: `archive/data.pkl`, `archive/data/0` (four float32 zeros), `archive/version`. */
export function torchZip(pickle: Uint8Array, storage: Uint8Array = new Uint8Array(16), opts: { zip64End?: boolean } = {}): Uint8Array {
  return buildZip([
    { name: "archive/data.pkl", data: pickle },
    { name: "archive/data/0", data: storage },
    { name: "archive/version", data: enc.encode("3\n") },
  ], opts);
}
