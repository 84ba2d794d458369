/**
 * Where `fora generate --latents-out` may write: a `.npy` name (so it can never be one of the
 * run's own PNGs, which all end in `.png`), and not inside the bundle the run reads, where it
 * could replace one of the bundle's graphs or weights.
 */
import { resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { isInside, outputLocation } from "./paths.ts";

export async function checkLatentsOut(path: string, bundle: string): Promise<void> {
  if (!path.toLowerCase().endsWith(".npy")) {
    throw new ForaError("usage", `--latents-out ${path}: give a file name ending in .npy (the run's images are .png files)`);
  }
  const realBundle = await Deno.realPath(bundle).catch(() => resolve(bundle));
  const target = await outputLocation(path);
  if (target === realBundle || isInside(realBundle, target)) {
    throw new ForaError("usage", `--latents-out ${path} is inside the bundle ${bundle}, which the run reads; write it elsewhere`);
  }
}
