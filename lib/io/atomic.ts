/**
 * Atomic file writes: the bytes go to a temp file in the target's folder, which is
 * renamed over the target only once complete. A reader never sees a half-written
 * file, and a failed write leaves neither the temp file nor a changed target.
 */
import { basename, dirname, join } from "node:path";
import { ForaError } from "../errors.ts";

/**
 * Writes `chunks` to `path` atomically. `what` names the file's kind in the error,
 * e.g. "PNG image": "out/a.png: could not write PNG image: Permission denied ...".
 */
export async function writeFileAtomic(
  path: string,
  chunks: readonly Uint8Array[],
  what: string,
): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const file = await Deno.open(tmp, {
      write: true,
      createNew: true,
      mode: 0o644,
    });
    created = true;
    try {
      for (const chunk of chunks) await writeAll(file, chunk);
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    if (created) await Deno.remove(tmp).catch(() => {});
    throw new ForaError(
      "io",
      `${path}: could not write ${what}: ${reasonOf(e)}`,
    );
  }
}

/** A hidden name next to `path`, unique per call: `dir/.name.tmp-1a2b3c4d5e6f`. */
export function tempPathFor(path: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const suffix = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  return join(dirname(path), `.${basename(path)}.tmp-${suffix}`);
}

export function reasonOf(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "the folder does not exist";
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (is the folder writable?)";
  }
  if (e instanceof Deno.errors.IsADirectory) {
    return "a folder of that name is in the way";
  }
  return e instanceof Error ? e.message : String(e);
}

/** Writes all of `bytes` (a file's write may take fewer than it is given). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}
