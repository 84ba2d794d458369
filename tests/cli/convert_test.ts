/** `fora convert` and `fora info` end to end, on the fixtures and on corrupt copies of them. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  copyTree,
  exists,
  listDir,
  readRaw,
  tensorEntries,
  TINY_DIFFUSERS,
  TINY_ORIGINAL,
  withTempDir,
  writeRaw,
} from "../bundle/helpers.ts";
import { lines, runFora } from "./run.ts";
import { DIT_GRAPH_KINDS } from "../../lib/bundle/manifest.ts";

for (
  const [label, src, naming, hasVae] of [
    ["original", TINY_ORIGINAL, "original", false],
    ["diffusers", TINY_DIFFUSERS, "diffusers", true],
  ] as const
) {
  Deno.test(`fora convert + info on the ${label} fixture`, async () => {
    await withTempDir(async (tmp) => {
      const dst = join(tmp, "bundle");
      const c = await runFora("convert", src, dst);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /bundle written to/);
      assert.match(c.stderr, /graph: dit-full-cfg\.fp32\.onnx/);
      assert.ok(await exists(join(dst, "manifest.json")));

      const i = await runFora("info", dst);
      assert.equal(i.code, 0, i.stderr);
      assert.match(i.stdout, /depth 2, hidden 64, 4 heads, patch 2/);
      assert.match(i.stdout, new RegExp(`DiT, ${naming} weights`));
      assert.match(i.stdout, /dit-blocks-plain\.fp16\.onnx/);
      assert.match(i.stdout, hasVae ? /vae-decoder\.fp32\.onnx/ : /VAE\s+none \(outputs are latents/);

      const j = await runFora("info", dst, "--json");
      assert.equal(j.code, 0, j.stderr);
      const info = JSON.parse(j.stdout);
      assert.equal(info.format, "fora-bundle");
      assert.equal(info.architecture, "dit");
      assert.equal(info.naming, naming);
      assert.equal(info.space, "latent");
      assert.equal(info.config.depth, 2);
      // 4 DiT graph files (cfg/plain x fp32/fp16) per kind, plus 2 VAE decoders.
      assert.equal(info.graphs.length, 4 * DIT_GRAPH_KINDS.length + (hasVae ? 2 : 0));
      assert.equal(info.vae === null, !hasVae);
      assert.ok(info.parameters > 0);
      if (hasVae) assert.deepEqual(info.vae.imageShape, [3, 16, 16]);

      const v = await runFora("info", dst, "--verify");
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, /every file matches its sha256/);
    });
  });
}

Deno.test("fora convert refuses a non-empty DST unless --force", async () => {
  await withTempDir(async (tmp) => {
    const dst = join(tmp, "bundle");
    await Deno.mkdir(dst);
    await Deno.writeTextFile(join(dst, "keep.txt"), "mine");
    const r = await runFora("convert", TINY_ORIGINAL, dst);
    assert.equal(r.code, 2);
    assert.match(lines(r.stderr).at(-1)!, /^error: .*exists and is not empty.*--force/);
    assert.deepEqual(await listDir(dst), ["keep.txt"]);
    const f = await runFora("convert", TINY_ORIGINAL, dst, "--force", "--quiet");
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stderr, "");
    assert.ok(!(await exists(join(dst, "keep.txt"))));
    assert.deepEqual(await listDir(tmp), ["bundle"]);
  });
});

Deno.test("fora info on a folder that is not a bundle says so", async () => {
  await withTempDir(async (tmp) => {
    const r = await runFora("info", tmp);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), [
      `error: ${tmp}: no manifest.json: not a fora bundle, or fora convert did not finish; run fora convert SRC ${tmp}`,
    ]);
  });
});

// ---- corrupt weights -----------------------------------------------------------------

interface Corruption {
  name: string;
  /** Rewrites the copied model.safetensors; returns fragments the error must contain. */
  apply(path: string): Promise<string[]>;
}

const CORRUPTIONS: Corruption[] = [
  {
    name: "truncated file",
    async apply(path) {
      const raw = await readRaw(path);
      const [last] = tensorEntries(raw).sort((a, b) => b[1].data_offsets[1] - a[1].data_offsets[1])[0];
      await writeRaw(path, { ...raw, data: raw.data.subarray(0, raw.data.length - 4) });
      return [path, `tensor "${last}"`, "reach past the data area"];
    },
  },
  {
    name: "header length beyond the file",
    async apply(path) {
      const raw = await readRaw(path);
      const size = (await Deno.stat(path)).size;
      await writeRaw(path, raw, { declaredLength: BigInt(size) });
      return [path, `header length ${size} runs past the end`];
    },
  },
  {
    name: "wrong shape",
    async apply(path) {
      const raw = await readRaw(path);
      const entry = raw.header["x_embedder.proj.weight"] as { shape: number[] };
      assert.deepEqual(entry.shape, [64, 4, 2, 2]);
      entry.shape = [64, 16]; // same byte count: the header stays valid, the model does not
      await writeRaw(path, raw);
      return ["model.safetensors", `tensor "x_embedder.proj.weight"`, "has shape [64, 16], expected [64, 4, 2, 2]"];
    },
  },
  {
    name: "missing tensor",
    async apply(path) {
      const raw = await readRaw(path);
      delete raw.header["final_layer.linear.weight"];
      await writeRaw(path, raw);
      // checkpoint.ts names the checkpoint's folder (it may span several files) and the tensor.
      return [path.slice(0, path.lastIndexOf("/")), `no tensor "final_layer.linear.weight"`];
    },
  },
  {
    name: "non-UTF-8 header",
    async apply(path) {
      const raw = await readRaw(path);
      const bytes = new TextEncoder().encode(JSON.stringify(raw.header));
      const at = new TextDecoder().decode(bytes).indexOf("x_embedder");
      bytes[at] = 0xff;
      await writeRaw(path, raw, { headerBytes: bytes });
      return [path, "header is not valid UTF-8"];
    },
  },
  {
    name: "unknown dtype",
    async apply(path) {
      const raw = await readRaw(path);
      (raw.header["t_embedder.mlp.0.bias"] as { dtype: string }).dtype = "Q4_X";
      await writeRaw(path, raw);
      return [path, `tensor "t_embedder.mlp.0.bias"`, `unknown dtype "Q4_X"`];
    },
  },
  {
    name: "integer dtype for a weight",
    async apply(path) {
      const raw = await readRaw(path);
      (raw.header["t_embedder.mlp.2.weight"] as { dtype: string }).dtype = "I32"; // same item size as F32
      await writeRaw(path, raw);
      return [path, `tensor "t_embedder.mlp.2.weight"`, "dtype I32"];
    },
  },
];

for (const c of CORRUPTIONS) {
  Deno.test(`fora convert with corrupt weights (${c.name}): one error line, no DST left`, async () => {
    await withTempDir(async (tmp) => {
      const src = join(tmp, "src");
      await copyTree(TINY_ORIGINAL, src);
      const fragments = await c.apply(join(src, "model.safetensors"));
      const dst = join(tmp, "bundle");
      const r = await runFora("convert", src, dst);
      assert.equal(r.code, 1, `exit ${r.code}\n${r.stderr}`);
      const errLines = lines(r.stderr).filter((l) => !l.startsWith("reading ") && !l.startsWith("weights: ") && !l.startsWith("graph: "));
      assert.equal(errLines.length, 1, `expected one error line, got:\n${r.stderr}`);
      assert.match(errLines[0], /^error: /);
      for (const f of fragments) assert.ok(errLines[0].includes(f), `"${errLines[0]}" lacks "${f}"`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace for a user error");
      assert.deepEqual(await listDir(tmp), ["src"], "DST and temporary folders must be gone");
    });
  });
}

Deno.test("fora convert with a truncated VAE file names the VAE file", async () => {
  await withTempDir(async (tmp) => {
    const src = join(tmp, "src");
    await copyTree(TINY_DIFFUSERS, src);
    const file = join(src, "vae", "diffusion_pytorch_model.safetensors");
    const raw = await readRaw(file);
    await writeRaw(file, { ...raw, data: raw.data.subarray(0, raw.data.length >> 1) });
    const r = await runFora("convert", src, join(tmp, "bundle"));
    assert.equal(r.code, 1);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^error: .*vae\/diffusion_pytorch_model\.safetensors: tensor ".*": data_offsets/);
    assert.deepEqual(await listDir(tmp), ["src"]);
  });
});
