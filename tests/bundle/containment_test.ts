/**
 * Nothing outside a bundle is read as part of it: every listed path is resolved whole
 * (realpath) and must stay inside the bundle folder, so a folder on the way (weights/,
 * tokenizer/) linked elsewhere is refused like a linked file, by `fora info --verify` and by
 * loading. Links that stay inside are fine.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertAnyBundle, convertBundle } from "../../lib/bundle/convert.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { readAnyManifest } from "../../lib/bundle/read.ts";
import { runFora } from "../cli/run.ts";
import { FIXTURES, TINY_DIFFUSERS, withTempDir } from "./helpers.ts";

/** Moves `dir/name` to `elsewhere` and leaves a symbolic link to it in its place. */
async function linkAway(dir: string, name: string, elsewhere: string): Promise<void> {
  await Deno.rename(join(dir, name), elsewhere);
  await Deno.symlink(elsewhere, join(dir, name));
}

Deno.test("a bundle whose weights/ folder links outside is refused by readManifest, fora info --verify and fora generate", async () => {
  await withTempDir(async (tmp) => {
    const bundle = join(tmp, "bundle");
    await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
    await linkAway(bundle, "weights", join(tmp, "outside-weights"));
    const message = /weights\/.*\.safetensors leads outside the bundle folder through a symbolic link/;
    await assert.rejects(() => readManifest(bundle), message);
    const info = await runFora("info", "--verify", bundle);
    assert.equal(info.code, 1, info.stderr);
    assert.match(info.stderr, message);
    assert.doesNotMatch(info.stdout, /verified/);
    const gen = await runFora("generate", "-m", bundle, "--steps", "3", "-o", join(tmp, "out"));
    assert.equal(gen.code, 1, gen.stderr);
    assert.match(gen.stderr, message);
  });
});

Deno.test("a folder linked to another place inside the bundle is accepted", async () => {
  await withTempDir(async (tmp) => {
    const bundle = join(tmp, "bundle");
    await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
    await linkAway(bundle, "weights", join(bundle, ".weights-store"));
    const info = await runFora("info", "--verify", bundle);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /every file matches its sha256/);
  });
});

Deno.test("a PixArt bundle whose tokenizer/ folder links outside is refused", async () => {
  await withTempDir(async (tmp) => {
    const bundle = join(tmp, "bundle");
    await convertAnyBundle(join(FIXTURES, "pixart-tiny", "diffusers"), bundle, { precisions: ["fp32"] });
    await linkAway(bundle, "tokenizer", join(tmp, "outside-tokenizer"));
    await assert.rejects(() => readAnyManifest(bundle), /tokenizer\/\S+ leads outside the bundle folder/);
    const info = await runFora("info", bundle);
    assert.equal(info.code, 1, info.stderr);
    assert.match(info.stderr, /tokenizer\/\S+ leads outside the bundle folder/);
  });
});
