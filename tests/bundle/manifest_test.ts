/** readManifest: a bundle is trusted only when its manifest and files agree. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ForaError } from "../../lib/errors.ts";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { isSafeRelativePath } from "../../lib/io/paths.ts";
import { DIT_GRAPH_KINDS, type Manifest } from "../../lib/bundle/manifest.ts";
import { readManifest, sha256File, verifyBundle } from "../../lib/bundle/read.ts";
import { TINY_DIFFUSERS, TINY_ORIGINAL, withTempDir } from "./helpers.ts";

/** A fresh fp32-only bundle of the tiny original fixture (12 ms of work). */
async function withBundle(fn: (dir: string) => Promise<void>): Promise<void> {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "bundle");
    await convertBundle(TINY_ORIGINAL, dir, { precisions: ["fp32"] });
    await fn(dir);
  });
}

async function editManifest(dir: string, edit: (m: Record<string, unknown> & Manifest) => void): Promise<void> {
  const path = join(dir, "manifest.json");
  const m = JSON.parse(await Deno.readTextFile(path));
  edit(m);
  await Deno.writeTextFile(path, JSON.stringify(m));
}

async function assertBundleError(dir: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(() => readManifest(dir), (e: unknown) => {
    assert.ok(e instanceof ForaError, `expected ForaError, got ${e}`);
    assert.equal(e.code, "bundle");
    assert.ok(!e.message.includes("\n"), `not one line: ${e.message}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
    return true;
  });
}

Deno.test("readManifest accepts a fresh bundle and records every file", async () => {
  await withBundle(async (dir) => {
    const m = await readManifest(dir);
    assert.equal(m.format, "fora-bundle");
    assert.equal(m.formatVersion, 1);
    assert.equal(m.architecture, "dit");
    assert.equal(m.space, "latent");
    assert.equal(m.vae, null);
    assert.equal(m.dit.naming, "original");
    assert.equal(m.dit.config.depth, 2);
    assert.equal(m.dit.conventions.freqDivisor, 128);
    assert.equal(m.dit.conventions.nullClass, 10);
    assert.equal(m.dit.graphs.length, 2 * DIT_GRAPH_KINDS.length);
    assert.deepEqual(m.dit.weights.files, ["weights/dit/model.safetensors"]);
    assert.deepEqual(m.dit.weights.dtypes, ["F32"]);
    const paths = m.files.map((f) => f.path);
    assert.ok(!paths.includes("manifest.json"));
    for (const g of m.dit.graphs) assert.ok(paths.includes(g.file));
    const weights = m.files.find((f) => f.path === "weights/dit/model.safetensors")!;
    assert.equal(weights.sha256, await sha256File(join(TINY_ORIGINAL, "model.safetensors")));
    assert.deepEqual(await verifyBundle(dir, m), []);
  });
});

Deno.test("readManifest: a missing file", async () => {
  await withBundle(async (dir) => {
    await Deno.remove(join(dir, "dit-reuse-plain.fp32.onnx"));
    await assertBundleError(dir, "dit-reuse-plain.fp32.onnx is listed in manifest.json but missing");
  });
  await withBundle(async (dir) => {
    // Removing (not writing) is safe: the weights are hard links to the fixture.
    await Deno.remove(join(dir, "weights", "dit", "model.safetensors"));
    await assertBundleError(dir, "weights/dit/model.safetensors is listed in manifest.json but missing");
  });
});

Deno.test("readManifest: a file whose size changed", async () => {
  await withBundle(async (dir) => {
    const file = join(dir, "dit-full-cfg.fp32.onnx");
    const size = (await Deno.stat(file)).size;
    await Deno.writeFile(file, new Uint8Array(3), { append: true });
    await assertBundleError(dir, `dit-full-cfg.fp32.onnx has ${size + 3} bytes but manifest.json records ${size}`);
  });
});

Deno.test("verifyBundle: same size, different bytes", async () => {
  await withBundle(async (dir) => {
    const file = join(dir, "dit-full-cfg.fp32.onnx");
    const bytes = await Deno.readFile(file);
    bytes[bytes.length - 1] ^= 0xff;
    await Deno.writeFile(file, bytes);
    const m = await readManifest(dir);
    assert.deepEqual(await verifyBundle(dir, m), ["dit-full-cfg.fp32.onnx"]);
  });
});

Deno.test("readManifest: paths escaping the bundle folder", async () => {
  for (const bad of ["../outside.onnx", "/etc/passwd", "weights/../../x", "weights//x", "./x", "a\\..\\b", "C:/x"]) {
    assert.equal(isSafeRelativePath(bad), false, bad);
    await withBundle(async (dir) => {
      await editManifest(dir, (m) => {
        m.files[0].path = bad;
      });
      await assertBundleError(dir, "files[0].path", "must be relative, inside the bundle folder");
    });
  }
  assert.equal(isSafeRelativePath("weights/dit/model.safetensors"), true);
});

Deno.test("readManifest: a graph or weight file that the file table does not list", async () => {
  await withBundle(async (dir) => {
    await editManifest(dir, (m) => {
      m.dit.graphs[0].file = "dit-other.fp32.onnx";
    });
    await assertBundleError(dir, "dit.graphs[0].file", 'names dit-other.fp32.onnx, which "files" does not list');
  });
  await withBundle(async (dir) => {
    await editManifest(dir, (m) => {
      m.dit.weights.files = ["../model.safetensors"];
    });
    await assertBundleError(dir, "dit.weights.files[0]", "inside the bundle folder");
  });
});

Deno.test("readManifest: a symbolic link leading out of the bundle", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "bundle");
    await convertBundle(TINY_ORIGINAL, dir, { precisions: ["fp32"] });
    const file = join(dir, "dit-reuse-cfg.fp32.onnx");
    const outside = join(tmp, "elsewhere.onnx");
    await Deno.rename(file, outside);
    await Deno.symlink(outside, file);
    await assertBundleError(dir, "dit-reuse-cfg.fp32.onnx leads outside the bundle folder through a symbolic link");
  });
});

Deno.test("readManifest: wrong format, newer version, broken JSON, no manifest", async () => {
  await withBundle(async (dir) => {
    await editManifest(dir, (m) => {
      (m as Record<string, unknown>).format = "something-else";
    });
    await assertBundleError(dir, `"format" is "something-else"`, "not a fora bundle manifest");
  });
  await withBundle(async (dir) => {
    await editManifest(dir, (m) => {
      m.formatVersion = 99;
    });
    await assertBundleError(dir, "newer than this fora reads", "upgrade fora");
  });
  await withBundle(async (dir) => {
    await editManifest(dir, (m) => {
      (m.dit.config as unknown as Record<string, unknown>).depth = "2";
    });
    await assertBundleError(dir, `"dit.config.depth" must be an integer from 1 to 256`);
  });
  await withBundle(async (dir) => {
    await Deno.writeTextFile(join(dir, "manifest.json"), "{ not json");
    await assertBundleError(dir, "manifest.json: not valid JSON");
  });
  await withTempDir(async (tmp) => {
    await assertBundleError(tmp, "no manifest.json: not a fora bundle, or fora convert did not finish");
    await assertBundleError(join(tmp, "nope"), "no such folder");
  });
});

Deno.test("readManifest: the VAE section is checked too", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "bundle");
    await convertBundle(TINY_DIFFUSERS, dir, { precisions: ["fp32"] });
    const m = await readManifest(dir);
    assert.equal(m.vae?.config.latentChannels, 4);
    await editManifest(dir, (m) => {
      (m.vae!.config as unknown as Record<string, unknown>).blockOutChannels = [];
    });
    await assertBundleError(dir, `"vae.config.blockOutChannels" must be a non-empty list`);
    await editManifest(dir, (m) => {
      m.vae!.config.blockOutChannels = [32, 64];
      (m as Record<string, unknown>).space = "pixel";
    });
    await assertBundleError(dir, `"vae" must be null for a pixel-space model`);
  });
});
