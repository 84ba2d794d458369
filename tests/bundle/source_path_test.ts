/** A bundle records where it was converted from relative to itself: no folder of the converting machine. */
import assert from "node:assert/strict";
import { isAbsolute, join, relative } from "node:path";
import { convertAnyBundle } from "../../lib/bundle/convert.ts";
import { readAnyManifest } from "../../lib/bundle/read.ts";
import { FIXTURES, ROOT, TINY_DIFFUSERS, withTempDir } from "./helpers.ts";

Deno.test("convert records source.path relative to the bundle folder (DiT and PixArt)", async () => {
  await withTempDir(async (tmp) => {
    for (const src of [TINY_DIFFUSERS, join(FIXTURES, "pixart-tiny", "diffusers")]) {
      const dst = join(tmp, "nested", `bundle-${src.length}`);
      const { manifest } = await convertAnyBundle(src, dst, { precisions: ["fp32"] });
      assert.equal(manifest.source.path, relative(dst, src));
      assert.equal((await readAnyManifest(dst)).source.path, relative(dst, src));
    }
  });
});

Deno.test("the shipped bundle's manifest names its source relative to itself", async () => {
  const bundle = join(ROOT, "models", "fashion-dit-bundle");
  const m = await readAnyManifest(bundle);
  assert.equal(isAbsolute(m.source.path), false, m.source.path);
  assert.equal(join(bundle, m.source.path), join(ROOT, "models", "fashion-dit"));
});
