/**
 * `fora generate --width W --height H` on PixArt bundles (the real CLI, a subprocess): the
 * tiny pipeline of fixtures/pixart-tiny with the 1024-MS transformer of fixtures/pixart-family
 * (micro-conditions, so the size reaches the model twice: latent shape and conditioning).
 * Resolution binning (sampled at a bin, resized back), exact sizes, the graph set built once per
 * size and reused, the float64 golden reproduced by a lazily built set, and the refusals.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ForaEvent, ImageEvent, RunStartEvent } from "../../lib/events/types.ts";
import { readPng } from "../../lib/io/png.ts";
import { readPixartManifest } from "../../lib/bundle/read.ts";
import { sizedGraphs } from "../../lib/models/pixart/sizes.ts";
import { guidanceMask } from "../../kernels/guidance.ts";
import { f32, openSession } from "../../lib/runtime/session.ts";
import { copyTree, FIXTURES, listDir } from "../bundle/helpers.ts";
import { readGolden, relError } from "../support.ts";
import { lines, runFora } from "./run.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-pixart-sizes-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});
const MS = join(FIXTURES, "pixart-family", "alpha-1024-ms");
const PROMPT = "A small cactus with a happy face in the Sahara desert.";

/** The tiny pipeline with the 1024-MS transformer (trained 8x8 latent, VAE factor 2: 16 px, sizes in steps of 4 px), converted. */
async function msBundle(name: string, opts: { vae?: boolean } = {}): Promise<string> {
  const src = join(WORK, `${name}-src`), dir = join(WORK, name);
  await copyTree(join(FIXTURES, "pixart-tiny", "diffusers"), src);
  await Deno.remove(join(src, "transformer"), { recursive: true });
  await copyTree(join(MS, "transformer"), join(src, "transformer"));
  if (opts.vae === false) await Deno.remove(join(src, "vae"), { recursive: true });
  const r = await runFora("convert", src, dir, "--precision", "fp32", "-q");
  assert.equal(r.code, 0, r.stderr);
  return dir;
}

let shared: Promise<string> | null = null;
const bundle = () => (shared ??= msBundle("ms"));

async function generate(dir: string, out: string, ...args: string[]) {
  const path = join(WORK, out);
  const r = await runFora(
    "generate",
    "-m",
    dir,
    "--prompt",
    PROMPT,
    "--steps",
    "4",
    "-N",
    "2",
    "--seed",
    "3",
    "-o",
    path,
    "--json",
    ...args,
  );
  assert.equal(r.code, 0, r.stderr);
  const events: ForaEvent[] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const start = events.find((e): e is RunStartEvent => e.event === "run_start")!;
  const image = events.find((e): e is ImageEvent => e.event === "image")!;
  return {
    png: await Deno.readFile(path),
    image: await readPng(path),
    start,
    event: image,
    built: /building the fp32 graphs/.test(r.stderr),
  };
}

Deno.test("an exact non-square size builds its graph set once, in BUNDLE/sizes/, and the next runs reuse it", async () => {
  const dir = await bundle();
  const first = await generate(dir, "exact.png", "--width", "20", "--height", "12", "--no-resolution-binning");
  assert.ok(first.built, "the first run at 20x12 builds the graphs");
  assert.deepEqual([first.image.width, first.image.height], [20, 12]);
  assert.deepEqual(first.start.size, { sampled: { width: 20, height: 12 }, output: { width: 20, height: 12 } });
  const sets = await listDir(join(dir, "sizes"));
  assert.equal(sets.length, 1);
  assert.match(sets[0], /^6x10-fp32-cfg-[0-9a-f]{16}$/);
  const graph = join(dir, "sizes", sets[0], "pixart-full-cfg.fp32.onnx");
  const mtime = (await Deno.stat(graph)).mtime;
  const again = await generate(dir, "again.png", "--width", "20", "--height", "12", "--no-resolution-binning");
  assert.ok(!again.built, "the second run reuses the set");
  assert.deepEqual(again.png, first.png);
  assert.deepEqual((await Deno.stat(graph)).mtime, mtime);
  // 20x12 is a bin (height / width 0.6): binning samples there and resizes nothing
  const binned = await generate(dir, "binned.png", "--width", "20", "--height", "12");
  assert.ok(!binned.built);
  assert.deepEqual(binned.png, first.png);
  // the trained size needs no set, and differs from the 20x12 image
  const trained = await generate(dir, "trained.png");
  assert.deepEqual([trained.image.width, trained.image.height], [16, 16]);
  assert.deepEqual([trained.event.sampled_width, trained.event.sampled_height], [16, 16]);
  assert.equal((await listDir(join(dir, "sizes"))).length, 1);
});

Deno.test("a bundle whose weights changed (another sha256 in its manifest) builds a new set instead of reusing the old one", async () => {
  const dir = await msBundle("ms-changed");
  await generate(dir, "before.png", "--width", "20", "--height", "12");
  const path = join(dir, "manifest.json");
  const m = JSON.parse(await Deno.readTextFile(path));
  const entry = m.files.find((f: { path: string }) => f.path === m.pixart.weights.files[0]);
  entry.sha256 = "0".repeat(64); // what a reconverted bundle with other weights of the same size would record
  await Deno.writeTextFile(path, JSON.stringify(m, null, 2));
  const after = await generate(dir, "after.png", "--width", "20", "--height", "12");
  assert.ok(after.built);
  assert.equal((await listDir(join(dir, "sizes"))).length, 2);
});

Deno.test("with resolution binning (the default) a request is sampled at the nearest bin and resized to the requested size", async () => {
  const dir = await bundle();
  // height / width 0.6 -> the 0.6 bin, 12 x 20 at this model's 16-px scale
  const r = await generate(dir, "25x15.png", "--width", "25", "--height", "15");
  assert.deepEqual([r.image.width, r.image.height], [25, 15]);
  assert.deepEqual(r.start.size, { sampled: { width: 20, height: 12 }, output: { width: 25, height: 15 } });
  assert.deepEqual([r.event.width, r.event.height, r.event.sampled_width, r.event.sampled_height], [25, 15, 20, 12]);
  // sampling at the exact size would need a multiple of 4
  const exact = await runFora("generate", "-m", dir, "--prompt", PROMPT, "--width", "25", "--height", "15", "--no-resolution-binning");
  assert.equal(exact.code, 2);
  assert.deepEqual(lines(exact.stderr), ["error: --width 25 is not a multiple of 4 (the VAE factor 2 x the patch size 2); use 24 or 28"]);
  // a tall request picks a tall bin: 15 x 40 (ratio 2.67) -> the 2.5 bin, 10 x 25 sixteenths -> 12 x 24 at steps of 4
  const tall = await generate(dir, "tall.png", "--width", "15", "--height", "40");
  assert.deepEqual([tall.image.width, tall.image.height], [15, 40]);
  assert.deepEqual(tall.start.size!.sampled, { width: 12, height: 24 });
});

Deno.test("a lazily built graph set reproduces the float64 golden of one full 1024-MS step at the 6x10 latent", async () => {
  // without a VAE the micro-conditions take diffusers' default factor 8, as the golden does
  const dir = await msBundle("ms-novae", { vae: false });
  const m = await readPixartManifest(dir);
  const logged: string[] = [];
  const set = await sizedGraphs(dir, m, { height: 6, width: 10 }, { precision: "fp32", guidance: "cfg" }, (l) => logged.push(l));
  assert.equal(logged.length, 2, "a build line and a timing line");
  const G = await readGolden(join(MS, "golden.safetensors"));
  const g = (n: string) => G.get(n)!;
  const text = await openSession(join(dir, "pixart-text.fp32.onnx"), { threads: 1 });
  const cond = await text.run({ caption: f32(g("caption_cond").shape, g("caption_cond").data) });
  const uncond = await text.run({ caption: f32(g("caption_uncond").shape, g("caption_uncond").data) });
  await text.release();
  const full = await openSession(join(set.dir!, "pixart-full-cfg.fp32.onnx"), { threads: 1 });
  const out = await full.run({
    latent: f32(g("x").shape, g("x").data),
    timestep: f32([1], [g("t").data[0]]),
    reuse_timesteps: f32([2], g("t_reuse").data),
    cond_k: cond.text_k,
    cond_v: cond.text_v,
    uncond_k: uncond.text_k,
    uncond_v: uncond.text_v,
    guidance_scale: f32([1], g("cfg_scale").data),
    guidance_mask: f32([2 * m.pixart.config.inChannels], guidanceMask(m.pixart.config, "all")),
  });
  await full.release();
  const err = relError(out.model_out.data as Float32Array, g("out_all").data);
  assert.ok(err <= 1e-5, `relative error ${err}`);
  const n = g("residual.0").data.length, residuals = out.residuals.data as Float32Array;
  assert.ok(relError(residuals.subarray(0, n), g("residual.0").data) <= 1e-5);
});

Deno.test("sizes are refused in one line: --width on a DiT bundle (exit 2); no writable place for the graphs (exit 1)", async () => {
  const dit = join(WORK, "dit");
  const c = await runFora("convert", join(FIXTURES, "dit-tiny", "diffusers"), dit, "-q");
  assert.equal(c.code, 0, c.stderr);
  const r = await runFora("generate", "-m", dit, "--class", "1", "--width", "32", "-o", join(WORK, "dit.png"));
  assert.equal(r.code, 2);
  assert.deepEqual(lines(r.stderr), [
    "error: --width and --height are for PixArt bundles; this DiT bundle samples at its trained size only",
  ]);

  // the bundle's sizes/ cannot be made (a file holds the name; a read-only folder does the same to a non-root user)
  const dir = await msBundle("ms-readonly");
  await Deno.writeTextFile(join(dir, "sizes"), "");
  const blocked = join(WORK, "not-a-folder");
  await Deno.writeTextFile(blocked, "");
  const before = Deno.env.get("XDG_CACHE_HOME");
  try {
    Deno.env.set("XDG_CACHE_HOME", blocked);
    const no = await runFora("generate", "-m", dir, "--prompt", PROMPT, "--steps", "2", "-N", "1", "--width", "20", "--height", "12");
    assert.equal(no.code, 1);
    assert.equal(lines(no.stderr).length, 1, no.stderr);
    assert.match(
      no.stderr,
      /^error: cannot build the graphs for a 6x10 latent: no writable place \(.*sizes: .*; .*not-a-folder\/fora\/sizes: .*\); make the bundle folder writable or set XDG_CACHE_HOME to a writable folder/,
    );
    // with a writable cache the set goes there instead
    const cache = join(WORK, "cache");
    Deno.env.set("XDG_CACHE_HOME", cache);
    const yes = await runFora(
      "generate",
      "-m",
      dir,
      "--prompt",
      PROMPT,
      "--steps",
      "2",
      "-N",
      "1",
      "--width",
      "20",
      "--height",
      "12",
      "-o",
      join(WORK, "cached.png"),
    );
    assert.equal(yes.code, 0, yes.stderr);
    assert.match((await listDir(join(cache, "fora", "sizes")))[0], /^6x10-fp32-cfg-/);
  } finally {
    if (before === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", before);
  }
});
