/** Where a path really leads, for checks that an output does not land on an input. */
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

/** Whether `p` lies strictly inside the folder `root` (both absolute, links resolved). */
export function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== "" && rel !== ".." && !rel.startsWith(".." + sep) && !isAbsolute(rel);
}

/**
 * Where an output file `path` will be: its folder with symbolic links resolved (through the
 * nearest existing ancestor, for folders yet to be created), then its own name. The name
 * itself is not followed: an atomic write replaces a link there, it does not write through it.
 */
export async function outputLocation(path: string): Promise<string> {
  return join(await realFolder(dirname(resolve(path))), basename(path));
}

async function realFolder(dir: string): Promise<string> {
  try {
    return await Deno.realPath(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || dirname(dir) === dir) return dir;
    return join(await realFolder(dirname(dir)), basename(dir));
  }
}

/**
 * Manifest paths are plain relative paths: "/"-separated, no empty, "." or ".." segment,
 * no backslash or NUL, not absolute. ONNX Runtime refuses external data outside the
 * model's folder, and a manifest must not make fora read or hash files elsewhere.
 */
export function isSafeRelativePath(p: string): boolean {
  if (p === "" || p.startsWith("/") || /[\\\0]/.test(p) || /^[A-Za-z]:/.test(p)) return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}
