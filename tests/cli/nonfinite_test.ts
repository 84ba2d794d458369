/**
 * Non-finite values never become images: a guidance scale outside float32, a NaN in
 * --latents-in, a NaN weight in the bundle, or a run that overflows end with exit 1 (2 for the
 * flag), one line naming the step or the file, no image or .npz written, and run_end "error".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ForaEvent } from "../../lib/events/types.ts";
import { writeNpy } from "../../lib/io/npy.ts";
import { copyTree, listDir, readRaw, ROOT, tensorEntries, TINY_DIFFUSERS, withTempDir, writeRaw } from "../bundle/helpers.ts";
import { lines, runFora } from "./run.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-nonfinite-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(WORK, { recursive: true }));

let tiny: Promise<string> | null = null;
function tinyBundle(): Promise<string> {
  tiny ??= (async () => {
    const out = join(WORK, "tiny");
    const r = await runFora("convert", TINY_DIFFUSERS, out, "-q");
    assert.equal(r.code, 0, r.stderr);
    return out;
  })();
  return tiny;
}

const NON_FINITE = /^error: step \d+ of \d+ produced non-finite values .*\(check the weights.*--cfg/;

function runEnd(stdout: string): ForaEvent & { event: "run_end" } {
  const events = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ForaEvent);
  const end = events.at(-1);
  assert.ok(end && end.event === "run_end", stdout);
  return end;
}

Deno.test("non-finite: --cfg beyond float32 is a usage error (exit 2)", async () => {
  const r = await runFora(
    "generate",
    "-m",
    await tinyBundle(),
    "--sampler",
    "ddim",
    "--steps",
    "4",
    "-N",
    "1",
    "--cfg",
    "1e39",
    "-o",
    join(WORK, "x.png"),
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--cfg/);
  assert.match(r.stderr, /float32|finite|at most/);
});

Deno.test("non-finite: a run that overflows ends with exit 1 naming the step, run_end error, no image", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "a.png");
    const r = await runFora(
      "generate",
      "-m",
      await tinyBundle(),
      "--sampler",
      "ddim",
      "--steps",
      "4",
      "-N",
      "1",
      "--cfg",
      "1e38",
      "-o",
      out,
      "--json",
    );
    assert.equal(r.code, 1, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, NON_FINITE);
    const end = runEnd(r.stdout);
    assert.equal(end.status, "error");
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("non-finite: a NaN in --latents-in is refused when read, naming the file", async () => {
  await withTempDir(async (dir) => {
    const data = new Float32Array(4 * 8 * 8).fill(0.5);
    data[17] = NaN;
    const npy = join(dir, "x.npy");
    await writeNpy(npy, { shape: [1, 4, 8, 8], data });
    const r = await runFora("generate", "-m", await tinyBundle(), "--steps", "4", "--latents-in", npy, "-o", join(dir, "out.png"));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /x\.npy/);
    assert.match(r.stderr, /non-finite|NaN/);
    assert.deepEqual((await listDir(dir)).sort(), ["x.npy"]);
  });
});

Deno.test("non-finite: a NaN weight in the model ends sample with exit 1 and writes no batch", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await copyTree(TINY_DIFFUSERS, src);
    const file = join(src, "transformer", "diffusion_pytorch_model.safetensors");
    const raw = await readRaw(file);
    const [, entry] = tensorEntries(raw).find(([name]) => name === "proj_out_2.weight")!;
    new DataView(raw.data.buffer, raw.data.byteOffset).setFloat32(entry.data_offsets[0], NaN, true);
    await writeRaw(file, raw);
    const bundle = join(dir, "bundle");
    const c = await runFora("convert", src, bundle, "-q");
    assert.equal(c.code, 0, c.stderr);
    const out = join(dir, "samples");
    const r = await runFora("sample", "-m", bundle, "--num", "2", "--steps", "4", "-o", out);
    assert.equal(r.code, 1, r.stderr);
    assert.match(lines(r.stderr).at(-1)!, NON_FINITE);
    const written = await listDir(out).catch(() => []);
    assert.ok(!written.some((f) => f.endsWith(".npz") || f.endsWith(".png")), written.join(", "));
  });
});

/** The shipped Fashion-MNIST DiT (pixel space, so eval's classifier reads its samples) converted with one NaN weight. */
let nanFashion: Promise<string> | null = null;
function nanFashionBundle(): Promise<string> {
  nanFashion ??= (async () => {
    const src = join(WORK, "fashion-nan");
    await copyTree(join(ROOT, "models", "fashion-dit"), src);
    const file = join(src, "model.safetensors");
    const raw = await readRaw(file);
    const [, entry] = tensorEntries(raw).find(([name]) => name === "final_layer.linear.bias")!;
    new DataView(raw.data.buffer, raw.data.byteOffset).setFloat32(entry.data_offsets[0], NaN, true);
    await writeRaw(file, raw);
    const bundle = join(WORK, "fashion-nan-bundle");
    const c = await runFora("convert", src, bundle, "-q");
    assert.equal(c.code, 0, c.stderr);
    return bundle;
  })();
  return nanFashion;
}

Deno.test("non-finite: eval of a NaN-weight bundle ends with the step's error (exit 1), not inside the statistics", async () => {
  const r = await runFora("eval", "-m", await nanFashionBundle(), "--samples", "2", "--batch", "2", "--sampler", "ddim", "--steps", "3");
  assert.equal(r.code, 1, r.stderr);
  assert.equal(lines(r.stderr).length, 1, r.stderr);
  assert.match(r.stderr, NON_FINITE);
});

Deno.test("non-finite: similarity of a NaN-weight bundle ends with the step's error (exit 1) and writes no report", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "sim");
    const r = await runFora("similarity", "-m", await nanFashionBundle(), "--steps", "4", "-o", out);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, NON_FINITE);
    assert.deepEqual(await listDir(out).catch(() => []), []);
  });
});
