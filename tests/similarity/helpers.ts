/**
 * Shared by tests/profile and tests/similarity: the random-weight fixtures converted to
 * bundles once per test process (each test file runs in its own), in a temp folder that
 * is removed when the process ends.
 *
 *   tiny   fixtures/dit-tiny/diffusers: latent space, 2 blocks, hidden 64, 16 tokens, 10
 *          classes, with a tiny VAE (8x8x4 latents to 16x16 RGB).
 *   pixel  fixtures/dit-pixel/original, marked pixel-space: 3 blocks, 16x16 gray, 5 classes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { copyTree, PIXEL_ORIGINAL, TINY_DIFFUSERS } from "../bundle/helpers.ts";

export const WORK = await Deno.makeTempDir({ prefix: "fora-analysis-test-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

let tiny: Promise<string> | null = null;
let pixel: Promise<string> | null = null;

export function tinyBundle(): Promise<string> {
  tiny ??= (async () => {
    const dst = join(WORK, "bundle-tiny");
    await convertBundle(TINY_DIFFUSERS, dst);
    return dst;
  })();
  return tiny;
}

export function pixelBundle(): Promise<string> {
  pixel ??= (async () => {
    const src = join(WORK, "pixel-src");
    await copyTree(PIXEL_ORIGINAL, src);
    const cfg = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...cfg, space: "pixel" }));
    const dst = join(WORK, "bundle-pixel");
    await convertBundle(src, dst);
    return dst;
  })();
  return pixel;
}

/** A fresh folder under WORK. */
export async function freshDir(name: string): Promise<string> {
  return await Deno.makeTempDir({ dir: WORK, prefix: `${name}-` });
}

/** Parses NDJSON stdout: one object per line, ending with a newline. */
export function ndjson<T = Record<string, unknown>>(stdout: string): T[] {
  const lines = stdout.split("\n");
  assert.equal(lines.pop(), "", "the output ends with a newline");
  return lines.map((l) => JSON.parse(l) as T);
}

/** Distinct pixel values of an image: a uniform image has 1. */
export function distinctPixels(data: Uint8Array, channels: number): number {
  const seen = new Set<number>();
  for (let p = 0; p < data.length; p += channels) {
    let key = 0;
    for (let c = 0; c < channels; c++) key = key * 256 + data[p + c];
    seen.add(key);
  }
  return seen.size;
}
