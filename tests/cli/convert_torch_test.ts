/**
 * `fora convert FILE.pt DST` end to end on checkpoints written by torch.save
 * (tools/reference/make_torch_fixtures.py): each converted bundle generates exactly the
 * latents of the same weights converted from safetensors; hostile files exit 1 with one line,
 * run nothing and leave nothing at DST.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyTree, exists, FIXTURES, listDir, TINY_DIFFUSERS, TINY_ORIGINAL, withTempDir } from "../bundle/helpers.ts";
import { readNpy } from "../../lib/io/npy.ts";
import { readTorchStateDict } from "../../lib/bundle/torch_source.ts";
import { tensorRange } from "../../lib/weights/torch.ts";
import type { PixartManifest } from "../../lib/bundle/pixart_manifest.ts";
import { buildZip, torchZip } from "../weights/zip_helpers.ts";
import { type CliResult, lines, runFora, runForaWith } from "./run.ts";

const TORCH = join(FIXTURES, "torch");
const PIPELINE = join(FIXTURES, "pixart-tiny", "diffusers");
const MS = join(FIXTURES, "pixart-family", "alpha-1024-ms");

/** A few steps with FORA caching and guidance: every graph kind the sampler uses runs. */
async function latents(bundle: string, out: string, conditions: readonly string[]): Promise<Float32Array> {
  const npy = join(out, `${crypto.randomUUID()}.npy`);
  const g = await runFora(
    "generate",
    "-m",
    bundle,
    ...conditions,
    "--steps",
    "8",
    "-N",
    "3",
    "--seed",
    "11",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--latents-out",
    npy,
    "-o",
    join(out, "png"),
  );
  assert.equal(g.code, 0, g.stderr);
  return (await readNpy(npy)).data as Float32Array;
}

const classes = (...ids: number[]) => ids.flatMap((c) => ["--class", String(c)]);

for (
  const [label, file, reference, heads, conditions, says, more] of [
    ["plain fp32 state dict (and a VAE folder)", "dit-tiny.pt", TINY_ORIGINAL, "4", classes(3, 7), undefined, [
      "--vae",
      join(TINY_DIFFUSERS, "vae"),
    ]],
    ["training checkpoint (fp16 ema, a non-contiguous view)", "dit-tiny-train.pt", TINY_ORIGINAL, "4", classes(3, 7), /"ema" weights/, []],
    ["bf16 state dict with a non-contiguous view", "dit-micro-bf16.pt", join(TORCH, "dit-micro"), "2", classes(0, 2), undefined, []],
  ] as const
) {
  Deno.test(`fora convert ${label}: fora generate gives the latents of the same weights from safetensors`, async () => {
    await withTempDir(async (tmp) => {
      const fromPt = join(tmp, "from-pt");
      const c = await runFora("convert", join(TORCH, file), fromPt, "--num-heads", heads, "--precision", "fp32", ...more);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stderr, new RegExp(`weights: wrote \\d+ tensors from ${file.replace(".", "\\.")} to weights/dit/model\\.safetensors`));
      if (says) assert.match(c.stderr, says);
      assert.deepEqual(await listDir(join(fromPt, "weights", "dit")), ["model.safetensors"], "nothing pickled in the bundle");
      const fromSt = join(tmp, "from-safetensors");
      const r = await runFora("convert", reference, fromSt, "--precision", "fp32", "-q");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await exists(join(fromPt, "vae-decoder.fp32.onnx")), more.length > 0);
      const a = await latents(fromPt, tmp, [...conditions, "--sampler", "ddim"]);
      const b = await latents(fromSt, tmp, [...conditions, "--sampler", "ddim"]);
      assert.equal(a.length, b.length);
      assert.ok(a.some((v) => v !== 0));
      assert.deepEqual(a, b);
    });
  });
}

/** The tiny T5 in PixArt's own layout: one folder with the .bin shards, config.json and the tokenizer files. */
async function pixartT5(tmp: string): Promise<string> {
  const t5 = join(tmp, "t5-v1_1");
  await copyTree(join(TORCH, "pixart-t5"), t5);
  await Deno.copyFile(join(PIPELINE, "text_encoder", "config.json"), join(t5, "config.json"));
  for (const f of await listDir(join(PIPELINE, "tokenizer"))) await Deno.copyFile(join(PIPELINE, "tokenizer", f), join(t5, f));
  return t5;
}

Deno.test("fora convert PixArt .pth with a T5 of .bin shards: fora generate gives the latents of the same weights from safetensors", async () => {
  await withTempDir(async (tmp) => {
    const t5 = await pixartT5(tmp);
    const fromPth = join(tmp, "from-pth");
    const args = ["--t5", t5, "--vae", join(PIPELINE, "vae"), "--precision", "fp32"];
    const c = await runFora("convert", join(TORCH, "PixArt-tiny.pth"), fromPth, "--num-heads", "4", ...args);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /wrote 21 tensors from pytorch_model-00001-of-00002\.bin, pytorch_model-00002-of-00002\.bin to weights\/t5/);
    assert.deepEqual(await listDir(join(fromPth, "weights", "pixart")), ["model.safetensors"]);

    // The reference: the diffusers pipeline with the same original-named transformer weights in safetensors.
    const ref = join(tmp, "ref");
    await copyTree(PIPELINE, ref);
    await Deno.copyFile(
      join(FIXTURES, "pixart-tiny", "original", "model.safetensors"),
      join(ref, "transformer", "diffusion_pytorch_model.safetensors"),
    );
    const fromSt = join(tmp, "from-safetensors");
    const r = await runFora("convert", ref, fromSt, "--precision", "fp32", "-q");
    assert.equal(r.code, 0, r.stderr);
    const a = await latents(fromPth, tmp, prompts);
    const b = await latents(fromSt, tmp, prompts);
    assert.ok(a.some((v) => v !== 0));
    assert.deepEqual(a, b);

    const missing = await runFora("convert", join(TORCH, "PixArt-tiny.pth"), join(tmp, "x"), "--num-heads", "4");
    assert.equal(missing.code, 2);
    assert.match(lines(missing.stderr)[0], /is a PixArt-alpha checkpoint: also pass --t5 DIR/);
  });
});

const prompts = ["--prompt", "a red fox in the snow", "--prompt", "two cats"];

Deno.test("fora convert PixArt 1024-MS .pth (size embedders, no pos_embed): the latents of the same weights from safetensors, at two sizes", async () => {
  await withTempDir(async (tmp) => {
    const t5 = await pixartT5(tmp);
    // the tiny model's trained 8x8 latent is 16 px through the tiny VAE (factor 2); its file name does not say so
    const fromPth = join(tmp, "from-pth");
    const args = ["--t5", t5, "--num-heads", "4", "--precision", "fp32"];
    const c = await runFora(
      "convert",
      join(TORCH, "PixArt-tiny-MS.pth"),
      fromPth,
      ...args,
      "--vae",
      join(PIPELINE, "vae"),
      "--image-size",
      "16",
    );
    assert.equal(c.code, 0, c.stderr);
    assert.match(
      c.stderr,
      /latent 4x8x8, learned sigma, latent = 16 px \(--image-size\) \/ VAE factor 2, caption width 32, micro-conditions;/,
    );
    const m: PixartManifest = JSON.parse(await Deno.readTextFile(join(fromPth, "manifest.json")));
    assert.deepEqual([m.pixart.config.inputSize, m.pixart.config.microConditions, m.pixart.config.interpolationScale], [8, true, 1]);
    assert.equal(m.pixart.conventions.vaeScaleFactor, 2);

    // The reference: the 1024-MS transformer's diffusers config with the same original-named weights in safetensors,
    // interpolation_scale left to diffusers' default for an 8 latent (1), as the .pth gets it (the fixture's config says 2).
    const ref = join(tmp, "ref");
    await copyTree(PIPELINE, ref);
    await Deno.remove(join(ref, "transformer"), { recursive: true });
    await copyTree(join(MS, "transformer"), join(ref, "transformer"));
    await Deno.copyFile(
      join(MS, "original", "diffusion_pytorch_model.safetensors"),
      join(ref, "transformer", "diffusion_pytorch_model.safetensors"),
    );
    const configPath = join(ref, "transformer", "config.json");
    await Deno.writeTextFile(configPath, JSON.stringify({ ...JSON.parse(await Deno.readTextFile(configPath)), interpolation_scale: null }));
    const fromSt = join(tmp, "from-safetensors");
    const r = await runFora("convert", ref, fromSt, "--precision", "fp32", "-q");
    assert.equal(r.code, 0, r.stderr);
    for (const size of [[], ["--width", "20", "--height", "12", "--no-resolution-binning"]]) {
      const a = await latents(fromPth, tmp, [...prompts, ...size]);
      const b = await latents(fromSt, tmp, [...prompts, ...size]);
      assert.equal(a.length, 2 * 4 * (size.length ? 6 * 10 : 8 * 8));
      assert.ok(a.some((v) => v !== 0));
      assert.deepEqual(a, b);
    }

    // PixArt's released name gives 1024 px: without a VAE, 128 latents (factor 8) and positions / 2, as PixArt runs it
    const released = join(tmp, "PixArt-XL-2-1024-MS.pth");
    await Deno.copyFile(join(TORCH, "PixArt-tiny-MS.pth"), released);
    const big = join(tmp, "big");
    const n = await runFora("convert", released, big, ...args, "-q");
    assert.equal(n.code, 0, n.stderr);
    const bm: PixartManifest = JSON.parse(await Deno.readTextFile(join(big, "manifest.json")));
    assert.deepEqual([bm.pixart.config.inputSize, bm.pixart.config.interpolationScale], [128, 2]);
  });
});

Deno.test("fora convert PixArt .pth: the image size is refused in one line where nothing gives it, on a DiT file, or against pos_embed", async () => {
  await withTempDir(async (tmp) => {
    const t5 = await pixartT5(tmp);
    const ms = join(TORCH, "PixArt-tiny-MS.pth");
    const unknown = await runFora("convert", ms, join(tmp, "b"), "--t5", t5, "--num-heads", "4");
    assert.equal(unknown.code, 2);
    assert.deepEqual(lines(unknown.stderr), [
      `error: ${ms} has no "pos_embed" and its name does not say 256x256, 512x512 or 1024-MS, so the image size is unknown; ` +
      `pass --image-size PX, the size it was trained at (e.g. 1024)`,
    ]);
    const odd = await runFora("convert", ms, join(tmp, "b"), "--t5", t5, "--num-heads", "4", "--image-size", "100");
    assert.equal(odd.code, 2);
    assert.deepEqual(lines(odd.stderr), [`error: ${ms}: --image-size 100 is not a multiple of 16 (the VAE factor 8 x the patch size 2)`]);
    const dit = await runFora("convert", join(TORCH, "dit-tiny.pt"), join(tmp, "b"), "--num-heads", "4", "--image-size", "64");
    assert.equal(dit.code, 2);
    assert.deepEqual(lines(dit.stderr), [
      `error: --image-size is for PixArt-alpha checkpoints; ${join(TORCH, "dit-tiny.pt")} is not one, and its pos_embed gives its size`,
    ]);
    const folder = await runFora("convert", PIPELINE, join(tmp, "b"), "--image-size", "16");
    assert.equal(folder.code, 2);
    assert.match(lines(folder.stderr)[0], /--image-size applies to PyTorch checkpoint files/);
    // PixArt-tiny.pth's pos_embed is for an 8x8 latent; 32 px over the default factor 8 is 4x4
    const pth = join(TORCH, "PixArt-tiny.pth");
    const against = await runFora("convert", pth, join(tmp, "b"), "--t5", t5, "--num-heads", "4", "--image-size", "32");
    assert.equal(against.code, 2);
    assert.deepEqual(lines(against.stderr), [
      `error: ${pth}: --image-size 32 gives a 4x4 latent (VAE factor 8), but its pos_embed is for 8x8; leave --image-size out`,
    ]);
    assert.deepEqual(await listDir(tmp), ["t5-v1_1"]);
  });
});

Deno.test("fora convert FILE.pt: the heads come from the published sizes, else --num-heads, which the error asks for", async () => {
  await withTempDir(async (tmp) => {
    const r = await runFora("convert", join(TORCH, "dit-tiny.pt"), join(tmp, "b"));
    assert.equal(r.code, 2);
    assert.deepEqual(lines(r.stderr), [
      `error: ${join(TORCH, "dit-tiny.pt")}: hidden size 64 is none of the published DiT sizes (1152, 1024, 768, 384), ` +
      `so the number of heads is unknown; pass --num-heads H`,
    ]);
    const f = await runFora("convert", TINY_ORIGINAL, join(tmp, "c"), "--num-heads", "4");
    assert.equal(f.code, 2);
    assert.match(lines(f.stderr)[0], /--num-heads applies to PyTorch checkpoint files/);
    assert.deepEqual(await listDir(tmp), []);
  });
});

Deno.test("fora convert FILE.pt refuses a pos_embed that is not the sin-cos table the graph computes", async () => {
  await withTempDir(async (tmp) => {
    // Same file, one pos_embed value changed in place: the F32 storage bytes of token 0, channel 0 (sin 0 = 0).
    const bytes = await Deno.readFile(join(TORCH, "dit-tiny.pt"));
    const sd = await readTorchStateDict(join(TORCH, "dit-tiny.pt"));
    const at = tensorRange(sd.ckpt, sd.tensors.get("pos_embed")!)!.offset;
    new DataView(bytes.buffer).setFloat32(at, 0.5, true);
    const src = join(tmp, "DiT-edited.pt");
    await Deno.writeFile(src, bytes);
    const r = await runFora("convert", src, join(tmp, "b"), "--num-heads", "4");
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), [
      `error: ${src}: pos_embed differs from the fixed 2D sin-cos table by 0.5 (token 0, channel 0); ` +
      `fora computes that table in the graph, so this model would not run as trained`,
    ]);
    assert.deepEqual(await listDir(tmp), ["DiT-edited.pt"]);
  });
});

/** The CLI run from `cwd`, where a pickle's shell command would write its file. */
function runForaIn(cwd: string, ...args: string[]): Promise<CliResult> {
  return runForaWith({ cwd }, ...args);
}

const hostile: string[] = [];
for await (const e of Deno.readDir(join(TORCH, "hostile"))) hostile.push(e.name);

for (const name of hostile.sort()) {
  Deno.test(`fora convert hostile/${name}: exit 1, one line naming the file, nothing run, nothing at DST`, async () => {
    await withTempDir(async (tmp) => {
      const src = join(tmp, name);
      await Deno.copyFile(join(TORCH, "hostile", name), src);
      const r = await runForaIn(tmp, "convert", src, join(tmp, "bundle"), "--num-heads", "4");
      assert.equal(r.code, 1, r.stderr);
      const errLines = lines(r.stderr);
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0], new RegExp(`^error: ${src.replaceAll(".", "\\.")}: `));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      // The os.system fixtures would write pickle-ran.txt into the working folder (tmp) if unpickled by Python.
      assert.deepEqual(await listDir(tmp), [name], "no bundle, no temporary folder, no file made by the pickle");
    });
  });
}

/** Hostile archives around a valid pickle (an empty dict), written byte by byte. */
const EMPTY_DICT = new Uint8Array([0x80, 0x02, 0x7d, 0x2e]);
const HOSTILE_ZIPS: Record<string, () => Uint8Array> = {
  "dotdot-name": () => buildZip([{ name: "../archive/data.pkl", data: EMPTY_DICT }]),
  "absolute-name": () => buildZip([{ name: "/archive/data.pkl", data: EMPTY_DICT }]),
  "zip-bomb": () => {
    const inner = buildZip([{ name: "archive/data/1", data: new Uint8Array(32) }]).subarray(0, 30 + 14 + 32);
    return buildZip([
      { name: "archive/data/0", data: inner },
      { name: "archive/data.pkl", data: EMPTY_DICT },
      { name: "archive/data/1", data: new Uint8Array(32), headerAt: 30 + "archive/data/0".length },
    ]);
  },
  "truncated": () => torchZip(EMPTY_DICT).subarray(0, 100),
  "compressed": () => buildZip([{ name: "archive/data.pkl", data: EMPTY_DICT, method: 8 }]),
  "size-beyond-file": () => buildZip([{ name: "archive/data.pkl", data: EMPTY_DICT, declaredSize: 1 << 30 }]),
};

for (const [name, bytes] of Object.entries(HOSTILE_ZIPS)) {
  Deno.test(`fora convert of a hostile archive (${name}): exit 1, one line naming the file, nothing at DST`, async () => {
    await withTempDir(async (tmp) => {
      const src = join(tmp, `${name}.pt`);
      await Deno.writeFile(src, bytes());
      const r = await runForaIn(tmp, "convert", src, join(tmp, "bundle"));
      assert.equal(r.code, 1, r.stderr);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.ok(lines(r.stderr)[0].startsWith(`error: ${src}: `), r.stderr);
      assert.deepEqual(await listDir(tmp), [`${name}.pt`]);
    });
  });
}
