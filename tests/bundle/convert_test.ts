/** convertBundle: layouts, placement of weights, DST handling, crash safety, loadability. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ForaError } from "../../lib/errors.ts";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { DIT_GRAPH_KINDS } from "../../lib/bundle/manifest.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { writeSafetensors } from "../../lib/weights/safetensors.ts";
import { openSession } from "../../lib/runtime/session.ts";
import {
  copyTree,
  exists,
  listDir,
  PIXEL_DIFFUSERS,
  PIXEL_ORIGINAL,
  readRaw,
  tensorEntries,
  TINY_DIFFUSERS,
  TINY_ORIGINAL,
  withTempDir,
  writeRaw,
} from "./helpers.ts";

async function assertForaError(action: () => Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(action, (e: unknown) => {
    assert.ok(e instanceof ForaError, `expected ForaError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
    return true;
  });
}

Deno.test("convert a diffusers pipeline with a VAE: layout and manifest", async () => {
  await withTempDir(async (tmp) => {
    const dst = join(tmp, "bundle");
    const r = await convertBundle(TINY_DIFFUSERS, dst);
    assert.equal(r.dir, dst);
    const names = await listDir(dst);
    for (const kind of DIT_GRAPH_KINDS) {
      for (const g of ["cfg", "plain"]) {
        for (const p of ["fp32", "fp16"]) assert.ok(names.includes(`dit-${kind}-${g}.${p}.onnx`), `${kind}-${g}.${p}`);
      }
    }
    assert.ok(names.includes("vae-decoder.fp32.onnx") && names.includes("vae-decoder.fp16.onnx"));
    assert.deepEqual(await listDir(join(dst, "weights")), ["dit", "vae"]);
    const m = await readManifest(dst);
    assert.deepEqual(m, r.manifest);
    assert.equal(m.source.layout, "diffusers");
    assert.equal(m.dit.naming, "diffusers");
    assert.equal(m.dit.conventions.freqDivisor, 127);
    assert.equal(m.dit.conventions.mlpNormEps, 1e-5);
    assert.ok(m.vae !== null);
    assert.equal(m.vae.config.latentChannels, 4);
    assert.deepEqual(m.vae.weights.files, ["weights/vae/diffusion_pytorch_model.safetensors"]);
    assert.deepEqual(m.vae.graphs.map((g) => g.latentSize), [[8, 8], [8, 8]]);
    assert.deepEqual(
      m.dit.graphs.filter((g) => g.precision === "fp16").map((g) => g.attention),
      Array(2 * DIT_GRAPH_KINDS.length).fill("fused"),
    );
  });
});

Deno.test("weights are hard-linked when source and bundle share a filesystem", async () => {
  await withTempDir(async (tmp) => {
    // Copy first, so the link is made in the temp filesystem whatever fixtures/ is on.
    const src = join(tmp, "src");
    await copyTree(TINY_ORIGINAL, src);
    const r = await convertBundle(src, join(tmp, "bundle"), { precisions: ["fp32"] });
    assert.equal(r.linked, 1);
    assert.equal(r.copied, 0);
    const a = await Deno.stat(join(src, "model.safetensors"));
    const b = await Deno.stat(join(tmp, "bundle", "weights", "dit", "model.safetensors"));
    assert.equal(a.ino, b.ino);
  });
});

Deno.test("copyWeights: the bundle shares no file with the source", async () => {
  await withTempDir(async (tmp) => {
    const r = await convertBundle(TINY_ORIGINAL, join(tmp, "bundle"), { precisions: ["fp32"], copyWeights: true });
    assert.equal(r.linked, 0);
    assert.equal(r.copied, 1);
    const a = await Deno.stat(join(TINY_ORIGINAL, "model.safetensors"));
    const b = await Deno.stat(join(tmp, "bundle", "weights", "dit", "model.safetensors"));
    assert.notEqual(a.ino, b.ino);
    assert.equal(b.nlink, 1);
    await readManifest(join(tmp, "bundle"));
  });
});

Deno.test("a sharded transformer checkpoint converts, shards kept by name", async () => {
  await withTempDir(async (tmp) => {
    const src = join(tmp, "src");
    await copyTree(TINY_DIFFUSERS, src);
    const single = join(src, "transformer", "diffusion_pytorch_model.safetensors");
    const raw = await readRaw(single);
    const entries = tensorEntries(raw);
    const half = entries.length >> 1;
    const shardNames = ["diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"];
    const weightMap: Record<string, string> = {};
    for (const [s, part] of [entries.slice(0, half), entries.slice(half)].entries()) {
      const tensors: Parameters<typeof writeSafetensors>[1] = {};
      for (const [name, e] of part) {
        const bytes = raw.data.slice(e.data_offsets[0], e.data_offsets[1]);
        tensors[name] = { dtype: "F32", shape: e.shape, data: new Float32Array(bytes.buffer) };
        weightMap[name] = shardNames[s];
      }
      await writeSafetensors(join(src, "transformer", shardNames[s]), tensors);
    }
    await Deno.remove(single);
    await Deno.writeTextFile(
      join(src, "transformer", "diffusion_pytorch_model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const r = await convertBundle(src, join(tmp, "bundle"), { precisions: ["fp32"] });
    assert.deepEqual(r.manifest.dit.weights.files, shardNames.map((n) => `weights/dit/${n}`));
    assert.equal(r.manifest.dit.weights.tensors, entries.length);
    await loadAll(join(tmp, "bundle"), r.manifest.dit.graphs.map((g) => g.file));
  });
});

Deno.test("space: pixel from config.json, latent by default, pixel with a VAE refused", async () => {
  await withTempDir(async (tmp) => {
    const src = join(tmp, "pixel");
    await copyTree(PIXEL_ORIGINAL, src);
    const cfg = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...cfg, space: "pixel" }));
    const r = await convertBundle(src, join(tmp, "b1"), { precisions: ["fp32"] });
    assert.equal(r.manifest.space, "pixel");
    assert.equal(r.manifest.vae, null);
    assert.equal(r.manifest.dit.config.inChannels, 1);

    const d = await convertBundle(PIXEL_DIFFUSERS, join(tmp, "b2"), { precisions: ["fp32"] });
    assert.equal(d.manifest.vae, null);

    await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...cfg, space: "pixels" }));
    await assertForaError(() => convertBundle(src, join(tmp, "b3")), "bundle", `"space" must be "latent" or "pixel"`);

    const withVae = join(tmp, "withvae");
    await copyTree(TINY_DIFFUSERS, withVae);
    await Deno.writeTextFile(join(withVae, "model_index.json"), JSON.stringify({ _class_name: "DiTPipeline", space: "pixel" }));
    await assertForaError(() => convertBundle(withVae, join(tmp, "b4")), "bundle", `"space": "pixel" but has a VAE`);
    assert.deepEqual(await listDir(tmp), ["b1", "b2", "pixel", "withvae"]);
  });
});

Deno.test("source folders that are not models, or mix layouts, are refused before DST is touched", async () => {
  await withTempDir(async (tmp) => {
    const dst = join(tmp, "bundle");
    await assertForaError(() => convertBundle(tmp, dst), "usage", "not a model folder fora can read");
    await assertForaError(() => convertBundle(join(tmp, "nope"), dst), "usage", "no such folder");
    await assertForaError(
      () => convertBundle(join(TINY_ORIGINAL, "model.safetensors"), dst),
      "usage",
      "is a file; pass the model folder",
    );
    await assertForaError(
      () => convertBundle(join(TINY_DIFFUSERS, "transformer"), dst),
      "usage",
      "diffusers component config",
    );
    // An original config.json next to diffusers-named weights.
    const mixed = join(tmp, "mixed");
    await copyTree(TINY_ORIGINAL, mixed);
    await Deno.remove(join(mixed, "model.safetensors"));
    await Deno.copyFile(join(TINY_DIFFUSERS, "transformer", "diffusion_pytorch_model.safetensors"), join(mixed, "model.safetensors"));
    await assertForaError(() => convertBundle(mixed, dst), "weights", "config is in original layout but the tensors use diffusers names");
    // A pipeline whose model_index lists a VAE that is not there.
    const noVae = join(tmp, "novae");
    await copyTree(TINY_DIFFUSERS, noVae);
    await Deno.remove(join(noVae, "vae"), { recursive: true });
    await assertForaError(() => convertBundle(noVae, dst), "bundle", `lists a "vae" but`);
    assert.ok(!(await exists(dst)));
  });
});

Deno.test("DST: an empty folder is used, a non-empty one needs force, the source is never replaced", async () => {
  await withTempDir(async (tmp) => {
    const dst = join(tmp, "bundle");
    await Deno.mkdir(dst);
    await convertBundle(TINY_ORIGINAL, dst, { precisions: ["fp32"] });
    await assertForaError(() => convertBundle(TINY_ORIGINAL, dst), "usage", "exists and is not empty");
    const r = await convertBundle(TINY_DIFFUSERS, dst, { force: true, precisions: ["fp16"] });
    assert.equal(r.manifest.dit.naming, "diffusers");
    assert.ok(!(await exists(join(dst, "dit-full-cfg.fp32.onnx"))), "old files are gone");
    assert.deepEqual(await listDir(tmp), ["bundle"], "no temporary or replaced folder left");

    const src = join(tmp, "src");
    await copyTree(TINY_ORIGINAL, src);
    await assertForaError(() => convertBundle(src, src, { force: true }), "usage", "holds the source model");
    await assertForaError(() => convertBundle(src, tmp, { force: true }), "usage", "holds the source model");
    assert.ok(await exists(join(src, "model.safetensors")));

    await Deno.writeTextFile(join(tmp, "file"), "x");
    await assertForaError(() => convertBundle(src, join(tmp, "file"), { force: true }), "usage", "is not a folder");
  });
});

Deno.test("a failure while building graphs leaves neither DST nor a temporary folder", async () => {
  await withTempDir(async (tmp) => {
    const src = join(tmp, "src");
    await copyTree(TINY_ORIGINAL, src);
    const raw = await readRaw(join(src, "model.safetensors"));
    delete raw.header["blocks.1.mlp.fc2.bias"];
    await writeRaw(join(src, "model.safetensors"), raw);
    const lines: string[] = [];
    await assertForaError(
      () => convertBundle(src, join(tmp, "out", "bundle"), { log: (l) => lines.push(l) }),
      "weights",
      `no tensor "blocks.1.mlp.fc2.bias"`,
    );
    assert.ok(lines.some((l) => l.startsWith("weights: hard-linked")), "failed after placing weights");
    assert.deepEqual(await listDir(join(tmp, "out")), []);
  });
});

/** Opens graphs with ONNX Runtime (CPU): proves external data resolves inside the bundle. */
async function loadAll(dir: string, files: string[]): Promise<void> {
  for (const f of files) {
    const s = await openSession(join(dir, f));
    assert.ok(s.inputNames.includes("latent"), `${f}: inputs ${s.inputNames}`);
    await s.release();
  }
}

Deno.test("fp32 graphs load in ONNX Runtime, also after the bundle folder is moved", async () => {
  await withTempDir(async (tmp) => {
    const first = join(tmp, "first");
    const r = await convertBundle(TINY_DIFFUSERS, first, { precisions: ["fp32"] });
    const moved = join(tmp, "moved", "elsewhere");
    await Deno.mkdir(join(tmp, "moved"));
    await Deno.rename(first, moved);
    const m = await readManifest(moved);
    assert.deepEqual(m, r.manifest);
    await loadAll(moved, [...m.dit.graphs.map((g) => g.file), ...m.vae!.graphs.map((g) => g.file)]);
  });
});
