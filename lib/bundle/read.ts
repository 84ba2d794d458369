/**
 * Reading a bundle: its manifest, checked (check.ts), and every file the manifest lists,
 * there, a regular file inside the folder, of the recorded size. `verifyBundle` re-hashes
 * them on request (fora info --verify).
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { isInside, isSafeRelativePath } from "../io/paths.ts";
import { bundleError, checkManifest, checkPixartManifest } from "./check.ts";
import { BUNDLE_FORMAT, type FileEntry, type Manifest, MANIFEST_FILE } from "./manifest.ts";
import { PIXART_ARCHITECTURE, type PixartManifest } from "./pixart_manifest.ts";

const HASH_CHUNK = 4 << 20;

/** sha256 of a file, streamed in 4 MiB chunks (weights can be many GB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(HASH_CHUNK);
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Reads `dir/manifest.json`, checks its structure, and checks every file it lists. */
export async function readManifest(dir: string): Promise<Manifest> {
  const { root, path, json } = await readManifestJson(dir);
  const manifest = checkManifest(json, path);
  await checkFiles(root, manifest);
  return manifest;
}

/** `dir/manifest.json` parsed, not yet checked (shared by the DiT and PixArt readers). */
export async function readManifestJson(dir: string): Promise<{ root: string; path: string; json: unknown }> {
  const root = resolve(dir);
  const info = await Deno.stat(root).catch((e) => {
    if (e instanceof Deno.errors.NotFound) throw bundleError(root, "no such folder");
    throw bundleError(root, `cannot read: ${(e as Error).message}`);
  });
  if (!info.isDirectory) throw bundleError(root, "is not a folder; pass the bundle folder that fora convert wrote");
  const path = join(root, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw bundleError(
        root,
        `no ${MANIFEST_FILE}: not a fora bundle, or fora convert did not finish; run fora convert SRC ${dir}`,
      );
    }
    throw bundleError(path, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bundleError(path, `not valid JSON (${(e as Error).message})`);
  }
  return { root, path, json };
}

/** Re-hashes every file and compares with the manifest; returns the paths that differ. */
export async function verifyBundle(dir: string, m: { files: FileEntry[] }): Promise<string[]> {
  const root = resolve(dir);
  const bad: string[] = [];
  for (const f of m.files) {
    if (await sha256File(join(root, f.path)) !== f.sha256) bad.push(f.path);
  }
  return bad;
}
/** Re-hashes every file (verifyBundle) and fails naming those that differ from the manifest. */
export async function checkHashes(root: string, m: { files: FileEntry[] }): Promise<void> {
  const bad = await verifyBundle(root, m);
  if (bad.length > 0) {
    throw bundleError(root, `sha256 differs from the manifest for ${bad.join(", ")}; the files were modified, re-run fora convert`);
  }
}

/** Every listed file is there, a regular file inside the folder, of the recorded size. */
export async function checkFiles(root: string, m: { files: FileEntry[] }): Promise<void> {
  const realRoot = await Deno.realPath(root);
  for (const f of m.files) {
    const abs = join(root, ...f.path.split("/"));
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(abs);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw bundleError(root, `${f.path} is listed in ${MANIFEST_FILE} but missing; the bundle is incomplete, re-run fora convert`);
      }
      throw bundleError(root, `${f.path}: cannot read: ${(e as Error).message}`);
    }
    // Resolved whole: a link anywhere on the path (weights/ linked to another folder) counts, not only the last one.
    const target = await Deno.realPath(abs).catch(() => undefined);
    if (target === undefined || !isInside(realRoot, target)) {
      throw bundleError(
        root,
        `${f.path} leads outside the bundle folder through a symbolic link; fora reads a bundle only from inside its folder; re-run fora convert`,
      );
    }
    if (st.isSymlink) st = await Deno.stat(abs);
    if (!st.isFile) throw bundleError(root, `${f.path} is not a regular file`);
    if (st.size !== f.size) {
      throw bundleError(
        root,
        `${f.path} has ${st.size} bytes but ${MANIFEST_FILE} records ${f.size}; the file was changed or truncated, re-run fora convert`,
      );
    }
  }
}

/** Reads a bundle's manifest whatever its architecture: DiT (checkManifest) or PixArt. */
export async function readAnyManifest(dir: string): Promise<Manifest | PixartManifest> {
  const { root, path, json } = await readManifestJson(dir);
  const o = typeof json === "object" && json !== null && !Array.isArray(json) ? json as Record<string, unknown> : {};
  if (o.format !== BUNDLE_FORMAT || o.architecture !== PIXART_ARCHITECTURE) {
    const m = checkManifest(json, path);
    await checkFiles(root, m);
    return m;
  }
  if (!Array.isArray(o.files)) throw new ForaError("bundle", `${path}: "files" must be a list`);
  const files = o.files as FileEntry[];
  for (const f of files) {
    if (typeof f?.path !== "string" || !isSafeRelativePath(f.path) || !Number.isSafeInteger(f.size)) {
      throw new ForaError(
        "bundle",
        `${path}: "files" has an entry that is not {path, size, sha256} with a relative path inside the bundle`,
      );
    }
  }
  const m = checkPixartManifest(o, path, new Set(files.map((f) => f.path)));
  await checkFiles(root, m);
  return m;
}

/** A PixArt bundle's manifest, or a usage error naming what the bundle is instead. */
export async function readPixartManifest(dir: string): Promise<PixartManifest> {
  const m = await readAnyManifest(dir);
  if (m.architecture !== "pixart") throw new ForaError("usage", `${dir}: is a ${m.architecture} bundle, not PixArt`);
  return m;
}
