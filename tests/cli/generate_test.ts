/**
 * `fora generate` end to end: the real CLI in a subprocess (run.ts), on two bundles converted
 * once for this file by `fora convert`:
 *
 *   tiny   fixtures/dit-tiny/diffusers: latent space, 2 blocks, 10 classes, latents [4, 8, 8],
 *          and a tiny VAE that decodes them to 16x16 RGB.
 *   pixel  fixtures/dit-pixel/original with "space": "pixel" added to its config.json: 3 blocks,
 *          5 classes, 16x16 gray samples, saved enlarged (nearest) to 256x256.
 *
 * Every run uses few steps (12 unless a test says otherwise), so each takes well under a second.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../lib/events/schema.json" with { type: "json" };
import type { CacheEvent, ForaEvent, ImageEvent, RunEndEvent, RunStartEvent, StepEvent, StepKind } from "../../lib/events/types.ts";
import { type Image, readPng } from "../../lib/io/png.ts";
import { readNpy, writeNpy } from "../../lib/io/npy.ts";
import { batchNormals, sampleRngs } from "../../lib/random/mod.ts";
import { samplerNames } from "../../lib/samplers/mod.ts";
import { copyTree, exists, listDir, PIXEL_ORIGINAL, ROOT, TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { CLI_PERMISSIONS, type CliResult, lines, runFora } from "./run.ts";

const STEPS = 12;

interface Model {
  label: "tiny" | "pixel";
  /** Transformer blocks: the length of each cache event's attn and mlp strings. */
  depth: number;
  numClasses: number;
  /** [channels, height, width] of one sample's latent. */
  latent: [number, number, number];
  /** One saved image. */
  image: { width: number; height: number; channels: number };
}

const TINY: Model = { label: "tiny", depth: 2, numClasses: 10, latent: [4, 8, 8], image: { width: 16, height: 16, channels: 3 } };
/** 16x16 enlarged by floor(256 / 16) = 16: lib/generator.ts's MIN_VISIBLE_SIDE is 256. */
const PIXEL: Model = { label: "pixel", depth: 3, numClasses: 5, latent: [1, 16, 16], image: { width: 256, height: 256, channels: 1 } };

// ---- bundles, converted once for the whole file ----------------------------------------------

const WORK = await Deno.makeTempDir({ prefix: "fora-generate-test-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

let converted: Promise<Record<Model["label"], string>> | null = null;

async function convertBoth(): Promise<Record<Model["label"], string>> {
  const tiny = join(WORK, "bundle-tiny");
  const c1 = await runFora("convert", TINY_DIFFUSERS, tiny, "-q");
  assert.equal(c1.code, 0, c1.stderr);

  const src = join(WORK, "pixel-src");
  await copyTree(PIXEL_ORIGINAL, src);
  const cfg = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
  await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...cfg, space: "pixel" }));
  const pixel = join(WORK, "bundle-pixel");
  const c2 = await runFora("convert", src, pixel, "-q");
  assert.equal(c2.code, 0, c2.stderr);
  assert.equal(JSON.parse(await Deno.readTextFile(join(pixel, "manifest.json"))).space, "pixel");
  return { tiny, pixel };
}

async function bundleOf(model: Model): Promise<string> {
  converted ??= convertBoth();
  return (await converted)[model.label];
}

/** A fresh, not yet existing output folder under `under` (default WORK). */
async function freshDir(name: string, under = WORK): Promise<string> {
  const parent = await Deno.makeTempDir({ dir: under, prefix: `${name}-` });
  return join(parent, "out");
}

/** `fora generate -m <bundle> --steps <steps> -o <out> ...extra`. */
async function generate(model: Model, out: string, extra: string[], steps = STEPS): Promise<CliResult> {
  return await runFora("generate", "-m", await bundleOf(model), "--steps", String(steps), "-o", out, ...extra);
}

/** .png and .npy files under `dir` (recursively), relative to it; [] when `dir` does not exist. */
async function outputsIn(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const found: string[] = [];
  for (const name of await listDir(dir)) {
    const path = join(dir, name);
    if ((await Deno.stat(path)).isDirectory) found.push(...(await outputsIn(path)).map((n) => `${name}/${n}`));
    else if (/\.(png|npy)$|\.tmp-/.test(name)) found.push(name);
  }
  return found;
}

// ---- the event stream ------------------------------------------------------------------------

const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);

/** Every stdout line, parsed and validated against lib/events/schema.json. */
function parseEvents(stdout: string): ForaEvent[] {
  const out = stdout.split("\n");
  assert.equal(out.pop(), "", "the stream ends with a newline");
  return out.map((line, n) => {
    let event: ForaEvent;
    try {
      event = JSON.parse(line);
    } catch (e) {
      assert.fail(`stdout line ${n + 1} is not JSON (${(e as Error).message}): ${line}`);
    }
    if (!validate(event)) assert.fail(`stdout line ${n + 1} breaks the schema: ${JSON.stringify(validate.errors)}\n${line}`);
    return event;
  });
}

/** FORA's static rule, stated independently of lib/fora: full when i == S-1 || i % N == 0, i = S-1-k. */
function expectedKinds(steps: number, interval: number): StepKind[] {
  return Array.from({ length: steps }, (_, k) => {
    const i = steps - 1 - k;
    return i === steps - 1 || i % interval === 0 ? "full" : "reuse";
  });
}

/** Full steps the rule gives: i = 0, N, 2N, ... (ceil(S/N) of them), plus i = S-1 unless a multiple of N. */
function fullCount(steps: number, interval: number): number {
  return Math.ceil(steps / interval) + ((steps - 1) % interval === 0 ? 0 : 1);
}

interface CheckedRun {
  start: RunStartEvent;
  images: ImageEvent[];
  end: RunEndEvent;
}

/** Checks a successful run's whole stream: order, plan, step and cache events, totals. */
function checkStream(events: ForaEvent[], model: Model, o: { steps: number; interval: number; batch: number }): CheckedRun {
  const { steps: S, interval: N, batch: B } = o;
  assert.deepEqual(
    events.map((e) => e.event),
    ["run_start", ...Array.from({ length: S }, () => ["step", "cache"]).flat(), ...Array(B).fill("image"), "run_end"],
    "event order: run_start, (step, cache) x S, image x B, run_end",
  );
  const runIds = new Set(events.map((e) => e.run_id));
  assert.equal(runIds.size, 1, "one run_id for the whole run");
  for (let n = 1; n < events.length; n++) {
    assert.ok(events[n].time_ms >= events[n - 1].time_ms, `time_ms goes back at event ${n}`);
  }

  const start = events[0] as RunStartEvent;
  const kinds = expectedKinds(S, N);
  assert.equal(start.plan.steps, S);
  assert.deepEqual(start.plan.kind, kinds);
  assert.equal(start.plan.full.length, fullCount(S, N), `full steps for S=${S}, N=${N}`);
  assert.deepEqual(start.plan.full, kinds.flatMap((k, i) => (k === "full" ? [i] : [])));
  assert.deepEqual(start.plan.policy, { name: "static", params: { interval: N } });
  assert.equal(start.flags.steps, S);
  assert.equal(start.flags.cache_interval, N);

  for (let k = 0; k < S; k++) {
    const step = events[1 + 2 * k] as StepEvent, cache = events[2 + 2 * k] as CacheEvent;
    assert.equal(step.k, k);
    assert.equal(step.index, S - 1 - k, "index counts down");
    assert.equal(step.kind, kinds[k], `kind of step k=${k}`);
    assert.equal(cache.index, step.index);
    const expected = (kinds[k] === "full" ? "M" : "H").repeat(model.depth);
    assert.equal(cache.attn, expected, `attn cache at k=${k} (${kinds[k]})`);
    assert.equal(cache.mlp, expected, `mlp cache at k=${k} (${kinds[k]})`);
  }

  const images = events.slice(1 + 2 * S, 1 + 2 * S + B) as ImageEvent[];
  images.forEach((img, b) => {
    assert.equal(img.index, b);
    assert.equal(img.width, model.image.width);
    assert.equal(img.height, model.image.height);
  });

  const end = events.at(-1) as RunEndEvent;
  assert.equal(end.status, "ok");
  assert.equal(end.error, undefined);
  assert.equal(end.totals.full_steps, fullCount(S, N));
  assert.equal(end.totals.reuse_steps, S - fullCount(S, N));
  assert.equal(end.totals.full_steps + end.totals.reuse_steps, S);
  return { start, images, end };
}

/** Runs generate, expects success, and checks the stream. */
async function generateOk(
  model: Model,
  out: string,
  extra: string[],
  o: { steps?: number; interval?: number; batch?: number } = {},
): Promise<CheckedRun & { result: CliResult }> {
  const steps = o.steps ?? STEPS;
  const r = await generate(model, out, extra, steps);
  assert.equal(r.code, 0, `fora generate ${extra.join(" ")}: exit ${r.code}\n${r.stderr}`);
  const run = checkStream(parseEvents(r.stdout), model, { steps, interval: o.interval ?? 3, batch: o.batch ?? 1 });
  return { ...run, result: r };
}

function assertImage(img: Image, want: Model["image"], what: string): void {
  assert.deepEqual(
    { width: img.width, height: img.height, channels: img.channels },
    want,
    `${what}: size`,
  );
}

// ---- 1. the NDJSON stream --------------------------------------------------------------------

Deno.test("generate --json: every line validates against schema.json, in the order run_start, (step, cache) x S, image x B, run_end", async () => {
  const cases: { model: Model; steps: number; interval: number; classes: number[] }[] = [
    { model: TINY, steps: STEPS, interval: 3, classes: [3, 7] },
    { model: PIXEL, steps: STEPS, interval: 5, classes: [1] },
    { model: TINY, steps: 10, interval: 4, classes: [0] },
    { model: PIXEL, steps: 7, interval: 1, classes: [4] },
    { model: TINY, steps: STEPS, interval: STEPS, classes: [9] },
  ];
  for (const c of cases) {
    const out = await freshDir("stream");
    const { start, images } = await generateOk(
      c.model,
      out,
      ["--json", "-N", String(c.interval), ...c.classes.flatMap((id) => ["--class", String(id)])],
      { steps: c.steps, interval: c.interval, batch: c.classes.length },
    );
    assert.equal(start.model.bundle, await bundleOf(c.model));
    assert.deepEqual(start.flags.classes, c.classes);
    assert.equal(start.flags.sampler, "ddpm");
    for (const img of images) assert.ok(await exists(img.path), `${img.path} was announced but not written`);
  }
});

// ---- 2. images -------------------------------------------------------------------------------

Deno.test("generate writes PNGs at the decoded size, named by seed, index and class; --grid adds a grid (NDJSON on a piped stdout)", async () => {
  // tiny: the VAE decodes [4, 8, 8] latents to 16x16 RGB. No --json: stdout is a pipe, so NDJSON anyway.
  const out = await freshDir("png-tiny");
  const tiny = await generateOk(TINY, out, ["--class", "3", "--class", "7", "--seed", "42", "--grid"], { batch: 2 });
  const names = ["fora-seed42-0-class3.png", "fora-seed42-1-class7.png"];
  assert.deepEqual(await listDir(out), [...names, "fora-seed42-grid.png"].sort());
  assert.deepEqual(tiny.images.map((i) => i.path), names.map((n) => join(out, n)));
  assert.deepEqual(tiny.images.map((i) => [i.seed, i.class]), [[42, 3], [42, 7]]);
  for (const n of names) assertImage(await readPng(join(out, n)), TINY.image, n);
  assertImage(await readPng(join(out, "fora-seed42-grid.png")), { width: 32, height: 16, channels: 3 }, "grid of 2");

  // pixel: 16x16 gray, enlarged 16x by nearest neighbour; --batch repeats the class list.
  const pout = await freshDir("png-pixel");
  const pixel = await generateOk(PIXEL, pout, ["--class", "4", "--batch", "3", "--seed", "1", "--grid"], { batch: 3 });
  const pnames = [0, 1, 2].map((b) => `fora-seed1-${b}-class4.png`);
  assert.deepEqual(await listDir(pout), [...pnames, "fora-seed1-grid.png"].sort());
  assert.deepEqual(pixel.start.flags.classes, [4, 4, 4]);
  for (const n of pnames) {
    const img = await readPng(join(pout, n));
    assertImage(img, PIXEL.image, n);
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const cell = img.data[(y - (y % 16)) * img.width + (x - (x % 16))];
        if (img.data[y * img.width + x] !== cell) {
          assert.fail(`${n}: (${x}, ${y}) differs from its 16x16 cell: not a nearest-neighbour enlargement`);
        }
      }
    }
  }
  assertImage(await readPng(join(pout, "fora-seed1-grid.png")), { width: 512, height: 512, channels: 1 }, "grid of 3 (2 columns)");
});

Deno.test("generate --out FILE.png: one sample writes exactly that file; several write FILE-<index>.png", async () => {
  const dir = await freshDir("file");
  const one = await generateOk(TINY, join(dir, "cat.png"), ["--class", "5"]);
  assert.deepEqual(await listDir(dir), ["cat.png"]);
  assert.equal(one.images[0].path, join(dir, "cat.png"));
  assertImage(await readPng(join(dir, "cat.png")), TINY.image, "cat.png");

  const dir2 = await freshDir("files");
  await generateOk(TINY, join(dir2, "two.png"), ["--class", "1", "--class", "2", "--grid"], { batch: 2 });
  assert.deepEqual(await listDir(dir2), ["two-0.png", "two-1.png", "two-grid.png"]);
});

// ---- 3. determinism and latents --------------------------------------------------------------

/** Byte-for-byte equality of two files' contents (assert.deepEqual would print every byte). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function bytesOf(dir: string): Promise<Map<string, Uint8Array>> {
  const m = new Map<string, Uint8Array>();
  for (const n of await listDir(dir)) m.set(n, await Deno.readFile(join(dir, n)));
  return m;
}

Deno.test("generate is deterministic: the same seed and flags give byte-identical PNGs and --latents-out; another seed other latents", async () => {
  const args = (seed: number, npy: string) => ["--class", "2", "--class", "8", "--seed", String(seed), "--latents-out", npy];
  const [a, b, c] = [await freshDir("det-a"), await freshDir("det-b"), await freshDir("det-c")];
  await generateOk(TINY, a, args(9, join(a, "..", "x0.npy")), { batch: 2 });
  await generateOk(TINY, b, args(9, join(b, "..", "x0.npy")), { batch: 2 });
  await generateOk(TINY, c, args(10, join(c, "..", "x0.npy")), { batch: 2 });

  const [pa, pb] = [await bytesOf(a), await bytesOf(b)];
  assert.deepEqual([...pa.keys()], ["fora-seed9-0-class2.png", "fora-seed9-1-class8.png"]);
  assert.deepEqual([...pb.keys()], [...pa.keys()]);
  for (const [name, bytes] of pa) assert.ok(sameBytes(pb.get(name)!, bytes), `${name} differs between two identical runs`);
  const [na, nb] = [await Deno.readFile(join(a, "..", "x0.npy")), await Deno.readFile(join(b, "..", "x0.npy"))];
  assert.ok(sameBytes(nb, na), ".npy differs between two identical runs");

  const la = await readNpy(join(a, "..", "x0.npy")), lc = await readNpy(join(c, "..", "x0.npy"));
  assert.deepEqual(la.shape, [2, ...TINY.latent]);
  assert.ok(la.data.every(Number.isFinite));
  assert.ok(lc.data.some((v, i) => v !== la.data[i]), "seed 10 must give other latents than seed 9");
});

/** x_T of a seeded run, as lib/generate.ts draws it: perSample normals from each sample's generator. */
function seededInitialLatent(model: Model, seed: number, batch: number): Float32Array {
  const [c, h, w] = model.latent;
  return batchNormals(sampleRngs(seed, batch), c * h * w);
}

Deno.test("generate --latents-in: a run's own seeded x_T reproduces it (DDPM's later noise included); another x_T runs deterministically", async () => {
  const dir = await freshDir("lat");
  await Deno.mkdir(dir, { recursive: true });
  const own = join(dir, "xT-seed5.npy"), other = join(dir, "xT-seed6.npy");
  await writeNpy(own, { shape: [1, ...TINY.latent], data: seededInitialLatent(TINY, 5, 1) });
  await writeNpy(other, { shape: [1, ...TINY.latent], data: seededInitialLatent(TINY, 6, 1) });
  const run = async (name: string, extra: string[]) => {
    const out = join(dir, name);
    const r = await generateOk(TINY, join(out, "img.png"), [
      "--sampler",
      "ddpm",
      "--seed",
      "5",
      "--latents-out",
      join(out, "x0.npy"),
      ...extra,
    ]);
    return { ...r, png: await Deno.readFile(join(out, "img.png")), x0: await Deno.readFile(join(out, "x0.npy")) };
  };
  const seeded = await run("seeded", []);
  const fromOwn = await run("own", ["--latents-in", own]);
  assert.equal(fromOwn.start.flags.latents_in, own);
  assert.ok(sameBytes(fromOwn.x0, seeded.x0), "--latents-in of the seed's own x_T must give the seeded run's latent");
  assert.ok(sameBytes(fromOwn.png, seeded.png), "... and its PNG");

  const o1 = await run("other1", ["--latents-in", other]);
  const o2 = await run("other2", ["--latents-in", other]);
  assert.ok(sameBytes(o2.x0, o1.x0), "the same --latents-in twice must give the same latent");
  assert.ok(sameBytes(o2.png, o1.png), "... and the same PNG");
  assert.ok(!sameBytes(o1.x0, seeded.x0), "--latents-in is used: another x_T gives another result");
});

Deno.test("generate --latents-in with the wrong shape exits 2 naming the flag and both shapes, writing nothing", async () => {
  const dir = await freshDir("badlat");
  await Deno.mkdir(dir, { recursive: true });
  const cases: [number[], string][] = [
    [[1, 4, 4, 4], "[1,4,4,4]"], // wrong latent size
    [[2, ...TINY.latent], "[2,4,8,8]"], // batch of 2 for one class
    [[4, 8, 8], "[4,8,8]"], // no batch axis
  ];
  for (const [shape, shown] of cases) {
    const file = join(dir, `x-${shape.join("x")}.npy`);
    await writeNpy(file, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const out = join(dir, "out");
    const r = await generate(TINY, out, ["--latents-in", file, "--latents-out", join(out, "x0.npy")]);
    assert.equal(r.code, 2, `shape [${shape}]: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.deepEqual(lines(r.stderr), [
      `error: --latents-in ${file}: shape ${shown} does not match this run's latent [1,4,8,8] (batch, channels, height, width)`,
    ]);
    assert.deepEqual(await outputsIn(out), []);
  }
});

// ---- 4. pipes --------------------------------------------------------------------------------

const HAS_JQ = (await new Deno.Command("bash", { args: ["-c", "command -v jq"], stdout: "null", stderr: "null" }).output()).success;

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The CLI as a shell command line: `deno run` on cli/main.ts directly, as runFora does (no task runner line). */
async function foraCommandLine(model: Model, out: string, extra: string[]): Promise<string> {
  const argv = [
    Deno.execPath(),
    "run",
    "-q",
    ...CLI_PERMISSIONS,
    join(ROOT, "cli", "main.ts"),
    "generate",
    "-m",
    await bundleOf(model),
    "--steps",
    String(STEPS),
    "-o",
    out,
    ...extra,
  ];
  return argv.map(shellQuote).join(" ");
}

async function bash(script: string): Promise<CliResult> {
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

Deno.test({
  name: `generate --json | jq -c 'select(.event=="run_end") | .status' prints "ok"${
    HAS_JQ ? "" : " (ignored: jq is not installed; .ci/run installs it)"
  }`,
  ignore: !HAS_JQ,
  fn: async () => {
    const cmd = await foraCommandLine(TINY, await freshDir("jq"), ["--json"]);
    const r = await bash(`set -o pipefail; ${cmd} | jq -c 'select(.event=="run_end") | .status'`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `"ok"\n`);
    assert.equal(r.stderr, "");
  },
});

Deno.test("generate --json | head -1 under pipefail: exit 0, nothing on stderr, the first line is run_start", async () => {
  for (const model of [TINY, PIXEL]) {
    const cmd = await foraCommandLine(model, await freshDir("head"), ["--json", "--class", "1"]);
    const r = await bash(`set -o pipefail; ${cmd} | head -1`);
    assert.equal(r.code, 0, `${model.label}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stderr, "", `${model.label}: stderr must stay empty`);
    const events = parseEvents(r.stdout);
    assert.equal(events.length, 1);
    assert.equal(events[0].event, "run_start");
  }
});

// ---- 5. errors -------------------------------------------------------------------------------

/** Commander's hint after its own option errors; the only line allowed besides the error. */
const HINT = "(add --help for usage)";

Deno.test("generate errors: one error line naming the flag or file, exit 2 for usage and 1 for runtime errors, no PNG or .npy left", async () => {
  const here = await Deno.makeTempDir({ dir: WORK, prefix: "errors-" });
  const blocker = join(here, "a-regular-file");
  await Deno.writeTextFile(blocker, "not a folder\n");
  const notBundle = await Deno.makeTempDir({ dir: here, prefix: "not-a-bundle-" });
  const missing = join(here, "no-such-bundle");
  const tiny = await bundleOf(TINY);

  type Case = { name: string; model?: Model; args: string[]; bundle?: string; out?: string; code: 1 | 2; says: string[] };
  const cases: Case[] = [
    { name: "class id out of range", args: ["--class", "10"], code: 2, says: ["--class 10 is out of range", "classes 0..9"] },
    {
      name: "class id out of range (pixel)",
      model: PIXEL,
      args: ["--class", "3", "--class", "5"],
      code: 2,
      says: ["--class 5 is out of range", "classes 0..4"],
    },
    { name: "non-numeric class", args: ["--class", "cat"], code: 2, says: ["--class", `"cat" is not a class of this model`] },
    { name: "negative class", args: ["--class", "-1"], code: 2, says: ["--class", `"-1" is not a class of this model`] },
    { name: "--steps 0", args: ["--steps", "0"], code: 2, says: ["--steps must be a whole number from 1 to 1000", `"0"`] },
    { name: "-N 0", args: ["-N", "0"], code: 2, says: ["--cache-interval must be a whole number >= 1", `"0"`] },
    { name: "-N larger than the steps", args: ["-N", "13"], code: 2, says: ["--cache-interval 13 is larger than --steps 12"] },
    { name: "--cfg nan", args: ["--cfg", "nan"], code: 2, says: ["--cfg", `"nan" is not a guidance scale`] },
    { name: "--cfg -1", args: ["--cfg", "-1"], code: 2, says: ["--cfg", `"-1" is not a guidance scale`] },
    { name: "--cfg below 1", args: ["--cfg", "0.5"], code: 2, says: ["--cfg", `"0.5" is not a guidance scale`] },
    { name: "malformed --seed", args: ["--seed", "abc"], code: 2, says: ["--seed", `"abc" is not a seed`] },
    { name: "fractional --seed", args: ["--seed", "1.5"], code: 2, says: ["--seed", `"1.5" is not a seed`] },
    {
      name: "unknown --sampler",
      args: ["--sampler", "euler"],
      code: 2,
      says: [`--sampler "euler" is unknown`, "ddpm, ddim, dpm-solver++, iddpm"],
    },
    { name: "missing bundle folder", bundle: missing, args: [], code: 1, says: [missing, "no such folder"] },
    { name: "folder without manifest", bundle: notBundle, args: [], code: 1, says: [notBundle, "no manifest.json"] },
    {
      name: "--out folder under a regular file",
      out: join(blocker, "sub"),
      args: [],
      code: 1,
      says: [`--out ${join(blocker, "sub")}: cannot write`],
    },
    {
      name: "--out FILE.png under a regular file",
      out: join(blocker, "x.png"),
      args: [],
      code: 1,
      says: [`--out ${join(blocker, "x.png")}: cannot write`],
    },
    {
      name: "--latents-out under a regular file",
      args: ["--latents-out", join(blocker, "x0.npy")],
      code: 1,
      says: [`--latents-out ${join(blocker, "x0.npy")}: cannot write`],
    },
    {
      name: "missing --latents-in file",
      args: ["--latents-in", join(here, "nope.npy")],
      code: 1,
      says: [join(here, "nope.npy"), "no such file"],
    },
  ];
  for (const c of cases) {
    const out = c.out ?? await freshDir("err", here);
    const r = await runFora(
      "generate",
      "-m",
      c.bundle ?? (c.model ? await bundleOf(c.model) : tiny),
      "--steps",
      String(STEPS),
      "-o",
      out,
      ...c.args,
    );
    const what = `${c.name} (fora generate ${c.args.join(" ")}):`;
    assert.equal(r.code, c.code, `${what} exit ${r.code}\n${r.stderr}`);
    const [first, ...rest] = lines(r.stderr);
    assert.match(first ?? "", /^error: /, `${what}\n${r.stderr}`);
    for (const s of c.says) assert.ok(first.includes(s), `${what} "${first}" lacks "${s}"`);
    assert.ok(rest.every((l) => l === HINT), `${what} one error line expected, got:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${what} no stack trace for a user error`);
    assert.equal(r.stdout, "", `${what} no events for a run that never started`);
    assert.deepEqual(await outputsIn(here), [], `${what} output left behind`);
  }
  assert.equal(await Deno.readTextFile(blocker), "not a folder\n");
});

// ---- 6. guidance -----------------------------------------------------------------------------

Deno.test("generate --cfg 1 runs the unguided graphs and gives a different image than --cfg 4", async () => {
  for (const model of [TINY, PIXEL]) {
    const dir = await freshDir(`cfg-${model.label}`);
    const run = async (cfg: string) => {
      const png = join(dir, `cfg${cfg}.png`);
      const r = await generateOk(model, png, ["--class", "2", "--seed", "3", "--cfg", cfg]);
      assert.equal(r.start.flags.cfg, Number(cfg));
      return await Deno.readFile(png);
    };
    const [unguided, guided] = [await run("1"), await run("4")];
    assertImage(await readPng(join(dir, "cfg1.png")), model.image, `${model.label} --cfg 1`);
    assert.ok(!sameBytes(unguided, guided), `${model.label}: --cfg 1 and --cfg 4 give the same PNG`);
  }
});

// ---- samplers --------------------------------------------------------------------------------

for (const sampler of samplerNames) {
  Deno.test(`generate --sampler ${sampler} runs end to end on both bundles`, async () => {
    for (const model of [TINY, PIXEL]) {
      const out = await freshDir(`sampler-${model.label}`);
      const npy = join(out, "x0.npy");
      const { start, images } = await generateOk(model, out, ["--sampler", sampler, "--class", "1", "--class", "2", "--latents-out", npy], {
        batch: 2,
      });
      assert.equal(start.flags.sampler, sampler);
      for (const img of images) assertImage(await readPng(img.path), model.image, `${sampler} on ${model.label}`);
      const x0 = await readNpy(npy);
      assert.deepEqual(x0.shape, [2, ...model.latent]);
      assert.ok(x0.data.every(Number.isFinite), `${sampler} on ${model.label}: non-finite latent`);
    }
  });
}
