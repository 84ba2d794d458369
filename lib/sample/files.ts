/**
 * Files of sample folders and merged archives: written atomically (a hidden temp file in
 * the target's folder, renamed over the target once complete, removed on any failure),
 * with errors that say what to do when the disk is full. Temp files have the names
 * lib/io/atomic.ts gives them (`.NAME.tmp-<12 hex digits>`), so that a run killed while
 * writing leaves only names a restart recognises and removes.
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { ForaError } from "../errors.ts";
import { reasonOf, tempPathFor, writeAll } from "../io/atomic.ts";

/**
 * Why a file operation failed, in words, with what to do for a full disk or a file-size
 * limit (ENOSPC, EDQUOT, EFBIG).
 */
export function ioReason(e: unknown): string {
  const text = reasonOf(e);
  if (/no space left|os error 28\b|ENOSPC/i.test(text)) {
    return `${text}: the disk is full; free space or write to another disk, then run the command again`;
  }
  if (/quota exceeded|os error 122\b|EDQUOT/i.test(text)) {
    return `${text}: the disk quota is used up; free space or write elsewhere, then run the command again`;
  }
  if (/file too large|os error 27\b|EFBIG/i.test(text)) {
    return `${text}: the file system or a file-size limit (ulimit -f) does not allow a file this large; ` +
      "raise the limit or write elsewhere, then run the command again";
  }
  return text;
}

/**
 * Writes `path` atomically: `produce` gets the temp file (open for writing and seeking)
 * and writes it whole; then the temp file is renamed over `path`. On any failure the
 * temp file is removed and a ForaError("io") names `path`, `what` and the reason.
 */
export async function writeAtomicWith(
  path: string,
  what: string,
  produce: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    created = true;
    try {
      await produce(file);
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    if (created) await Deno.remove(tmp).catch(() => {});
    if (e instanceof ForaError) throw e;
    throw new ForaError("io", `${path}: could not write ${what}: ${ioReason(e)}`);
  }
}

/** Writes `bytes` to `path` atomically. */
export async function writeBytesAtomic(path: string, what: string, bytes: Uint8Array): Promise<void> {
  await writeAtomicWith(path, what, (file) => writeAll(file, bytes));
}

export { writeAll };

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A temp file that atomic.ts made for one of `names` in a folder: `.NAME.tmp-<12 hex>`. */
const TEMP = /^\.(.+)\.tmp-[0-9a-f]{12}$/;

/**
 * Removes temp files left by a killed run in `dir`: only those whose NAME `isOurs`
 * accepts. Returns how many were removed.
 */
export async function removeStaleTemps(dir: string, isOurs: (name: string) => boolean): Promise<number> {
  let removed = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = TEMP.exec(e.name);
      if (e.isFile && m && isOurs(m[1])) {
        await Deno.remove(join(dir, e.name));
        removed++;
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return removed;
    throw new ForaError("io", `${dir}: could not clean up temp files: ${ioReason(e)}`);
  }
  return removed;
}

/** Whether `name` (a base name) is a temp file name of atomic.ts's shape. */
export function isTempName(name: string): boolean {
  return TEMP.test(basename(name));
}
