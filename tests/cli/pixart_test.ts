/**
 * PixArt-alpha end to end through the real CLI (a subprocess, as `deno task fora` runs it):
 * `fora convert` on the diffusers-layout tiny PixArt pipeline of fixtures/pixart-tiny
 * (transformer, a sharded 2-layer T5 encoder, spiece.model and tokenizer.json, the tiny VAE, scheduler), then
 * `fora generate --prompt`, which writes a 16x16 PNG per prompt and NDJSON events carrying the
 * prompt. Few steps each, so every run takes about a second.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ForaEvent, ImageEvent, RunEndEvent, RunStartEvent } from "../../lib/events/types.ts";
import { readPng } from "../../lib/io/png.ts";
import { copyTree, FIXTURES, listDir } from "../bundle/helpers.ts";
import { lines, runFora } from "./run.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-pixart-cli-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

let bundle: Promise<string> | null = null;
function converted(): Promise<string> {
  bundle ??= (async () => {
    const dir = join(WORK, "bundle");
    const r = await runFora("convert", join(FIXTURES, "pixart-tiny", "diffusers"), dir, "--precision", "fp32", "-q");
    assert.equal(r.code, 0, r.stderr);
    return dir;
  })();
  return bundle;
}

function events(stdout: string): ForaEvent[] {
  return lines(stdout).map((l) => JSON.parse(l));
}

Deno.test("fora convert writes a PixArt bundle: text, step and T5 graphs, tokenizer, VAE; fora info describes it", async () => {
  const dir = await converted();
  const names = await listDir(dir);
  for (
    const f of [
      "manifest.json",
      "pixart-text.fp32.onnx",
      "pixart-full-cfg.fp32.onnx",
      "pixart-reuse_xr-plain.fp32.onnx",
      "t5-encoder.fp32.onnx",
      "vae-decoder.fp32.onnx",
      "tokenizer",
    ]
  ) {
    assert.ok(names.includes(f), `${f} in ${names}`);
  }
  const m = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
  assert.equal(m.architecture, "pixart");
  assert.equal(m.pixart.conventions.unconditional, "empty-prompt");
  assert.equal(m.textEncoder.config.numLayers, 2);
  assert.deepEqual(m.textEncoder.weights.files, [
    "weights/t5/model-00001-of-00002.safetensors",
    "weights/t5/model-00002-of-00002.safetensors",
  ]);
  const info = await runFora("info", dir);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /PixArt-alpha/);
  // pixart-tiny's scheduler config has no timestep_spacing or clip_sample: DDIMScheduler's defaults
  assert.match(
    info.stdout,
    /DDIM +linear betas 0\.0001\.\.0\.02 over 1000 steps, "leading" timesteps, x0 clipped to \+-1, last step to alpha_cumprod 1/,
  );
});

Deno.test("fora generate --prompt writes one PNG per prompt with PixArt's defaults, and image events carry the prompt", async () => {
  const dir = await converted();
  const out = join(WORK, "out-defaults");
  const r = await runFora(
    "generate",
    "-m",
    dir,
    "--prompt",
    "A small cactus with a happy face.",
    "--prompt",
    "a red fox",
    "--steps",
    "6",
    "-N",
    "2",
    "-o",
    out,
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  const ev = events(r.stdout);
  const start = ev[0] as RunStartEvent;
  assert.equal(start.model.architecture, "pixart");
  assert.equal(start.flags.sampler, "dpm-solver++");
  assert.equal(start.flags.cfg, 4.5);
  assert.equal(start.flags.cfg_channels, "all");
  assert.equal(start.flags.cache_cross_attn, "on");
  const images = ev.filter((e): e is ImageEvent => e.event === "image");
  assert.deepEqual(images.map((e) => e.prompt), ["A small cactus with a happy face.", "a red fox"]);
  assert.deepEqual(images.map((e) => e.class), [null, null]);
  for (const e of images) {
    const png = await readPng(e.path);
    assert.equal(png.width, 16);
    assert.equal(png.height, 16);
  }
  assert.equal((ev.at(-1) as RunEndEvent).status, "ok");
});

Deno.test("--cache-cross-attn off and --no-clean-caption change the image; iddpm with 100 steps runs", async () => {
  const dir = await converted();
  const run = async (name: string, ...extra: string[]) => {
    const out = join(WORK, `${name}.png`);
    const r = await runFora(
      "generate",
      "-m",
      dir,
      "--prompt",
      "A CAT, www.example.com",
      "--steps",
      "8",
      "-N",
      "3",
      "-o",
      out,
      "--json",
      ...extra,
    );
    assert.equal(r.code, 0, r.stderr);
    return await Deno.readFile(out);
  };
  const on = await run("on");
  assert.deepEqual(await run("on-again"), on, "same seed and flags give the same PNG");
  assert.notDeepEqual(await run("off", "--cache-cross-attn", "off"), on);
  assert.notDeepEqual(await run("raw", "--no-clean-caption"), on);
  const r = await runFora(
    "generate",
    "-m",
    dir,
    "--prompt",
    "a cat",
    "--sampler",
    "iddpm",
    "-N",
    "2",
    "-o",
    join(WORK, "iddpm.png"),
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  const end = events(r.stdout).at(-1) as RunEndEvent;
  assert.equal(end.totals.full_steps + end.totals.reuse_steps, 100);
  assert.equal(end.totals.full_steps, 51);
});

Deno.test("a PixArt bundle from before the graph kinds took underscores (full-xr, reuse-xr) reads and runs as before", async () => {
  const dir = await converted();
  const legacy = join(WORK, "legacy-kinds");
  await copyTree(dir, legacy);
  // Such bundles named both the kinds and the files with hyphens.
  const old = (s: string) => s.replace(/(full|reuse)_xr/g, "$1-xr");
  for (const f of await listDir(legacy)) {
    if (f.includes("_xr")) await Deno.rename(join(legacy, f), join(legacy, old(f)));
  }
  const manifest = join(legacy, "manifest.json");
  await Deno.writeTextFile(manifest, old(await Deno.readTextFile(manifest)));
  const run = async (bundle: string, name: string) => {
    const out = join(WORK, `${name}.png`);
    const r = await runFora(
      "generate",
      "-m",
      bundle,
      "--prompt",
      "a cat",
      "--steps",
      "6",
      "-N",
      "2",
      "--cache-cross-attn",
      "off",
      "-o",
      out,
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    return await Deno.readFile(out);
  };
  assert.deepEqual(await run(legacy, "legacy-kinds"), await run(dir, "current-kinds"));
});

Deno.test("--embeddings-cache stores each prompt's encoder output once and reuses it across runs", async () => {
  const dir = await converted();
  const cache = join(WORK, "emb-cache");
  const run = async (out: string, ...prompts: string[]) => {
    const r = await runFora(
      "generate",
      "-m",
      dir,
      ...prompts.flatMap((p) => ["--prompt", p]),
      "--steps",
      "4",
      "-o",
      join(WORK, out),
      "--embeddings-cache",
      cache,
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
  };
  await run("c1.png", "a blue bird");
  // the prompt and T5("") for the unconditional half
  assert.equal((await listDir(cache)).length, 2);
  const before = await Deno.readFile(join(WORK, "c1.png"));
  await run("c2.png", "a blue bird");
  assert.equal((await listDir(cache)).length, 2, "no new entry for a cached prompt");
  assert.deepEqual(await Deno.readFile(join(WORK, "c2.png")), before, "cached embeddings give the same image");
  await run("c3.png", "a blue bird", "a green frog");
  assert.equal((await listDir(cache)).length, 3);
});

Deno.test("PixArt usage errors: --class on a PixArt bundle, no --prompt, --prompt on a DiT bundle (exit 2)", async () => {
  const dir = await converted();
  const a = await runFora("generate", "-m", dir, "--class", "3", "-o", join(WORK, "x.png"));
  assert.equal(a.code, 2);
  assert.match(a.stderr, /takes --prompt/);
  const b = await runFora("generate", "-m", dir, "-o", join(WORK, "x.png"));
  assert.equal(b.code, 2);
  assert.match(b.stderr, /needs --prompt/);
  const dit = join(WORK, "dit");
  assert.equal((await runFora("convert", join(FIXTURES, "dit-tiny", "original"), dit, "--precision", "fp32", "-q")).code, 0);
  const c = await runFora("generate", "-m", dit, "--prompt", "a cat", "-o", join(WORK, "x.png"));
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--prompt needs a PixArt-alpha bundle/);
});

Deno.test("a pipeline whose tokenizer/ has spiece.model only converts, and generates what tokenizer.json only gives", async () => {
  const bundleWith = async (only: string, drop: string) => {
    const src = join(WORK, `${only}-only`), dir = join(WORK, `${only}-bundle`);
    await copyTree(join(FIXTURES, "pixart-tiny", "diffusers"), src);
    await Deno.remove(join(src, "tokenizer", drop));
    const c = await runFora("convert", src, dir, "--precision", "fp32", "-q");
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual((await listDir(join(dir, "tokenizer"))).sort(), [only, "special_tokens_map.json", "tokenizer_config.json"].sort());
    return dir;
  };
  const image = async (bundle: string) => {
    const out = join(bundle, "image.png");
    // Sentinels, full-width letters and a zero-width joiner: where a tokenizer would most likely slip.
    const prompt = "Ｃａｃｔｕｓ <extra_id_0> in the\u200d desert, ﬁne art";
    const r = await runFora("generate", "-m", bundle, "--prompt", prompt, "--no-clean-caption", "--steps", "4", "-o", out, "--json");
    assert.equal(r.code, 0, r.stderr);
    return await Deno.readFile(out);
  };
  const spm = await image(await bundleWith("spiece.model", "tokenizer.json"));
  assert.deepEqual(await image(await bundleWith("tokenizer.json", "spiece.model")), spm);
});
