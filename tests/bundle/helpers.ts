/**
 * Shared by tests/bundle and tests/cli: temp folders, fixture copies, and byte-level
 * edits of safetensors files to produce corrupt checkpoints.
 *
 * Bundles hard-link their weights to the source files. A test must never write into a
 * bundle's weights/ in place (that would write through the link into fixtures/): only
 * delete them, or edit the freshly written .onnx / manifest.json files.
 */
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname!, "..", "..");
export const FIXTURES = join(ROOT, "fixtures");
export const TINY_ORIGINAL = join(FIXTURES, "dit-tiny", "original");
export const TINY_DIFFUSERS = join(FIXTURES, "dit-tiny", "diffusers");
export const PIXEL_ORIGINAL = join(FIXTURES, "dit-pixel", "original");
export const PIXEL_DIFFUSERS = join(FIXTURES, "dit-pixel", "diffusers");

export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fora-bundle-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Copies a folder tree (real copies, never links). */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyTree(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

export async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file split into its parsed header and its data area. */
export interface RawSafetensors {
  header: Record<string, HeaderEntry | Record<string, string>>;
  data: Uint8Array;
}

export async function readRaw(path: string): Promise<RawSafetensors> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.slice(8 + n) };
}

export function tensorEntries(raw: RawSafetensors): [string, HeaderEntry][] {
  return Object.entries(raw.header).filter(([k]) => k !== "__metadata__") as [string, HeaderEntry][];
}

/** Writes header + data; `headerBytes` / `declaredLength` override for corruption. */
export async function writeRaw(
  path: string,
  raw: RawSafetensors,
  opts: { headerBytes?: Uint8Array; declaredLength?: bigint } = {},
): Promise<void> {
  const headerBytes = opts.headerBytes ?? new TextEncoder().encode(JSON.stringify(raw.header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, opts.declaredLength ?? BigInt(headerBytes.length), true);
  const out = new Uint8Array(8 + headerBytes.length + raw.data.length);
  out.set(prefix, 0);
  out.set(headerBytes, 8);
  out.set(raw.data, 8 + headerBytes.length);
  // Remove first: the path may be a hard link shared with a fixture.
  await Deno.remove(path).catch(() => {});
  await Deno.writeFile(path, out);
}
