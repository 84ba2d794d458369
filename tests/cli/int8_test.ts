/**
 * `--precision int8` through the real CLI (a subprocess) on the tiny latent DiT with its VAE:
 * convert builds int8 graphs, their quantized weights and an fp32 VAE decoder; generate runs
 * them on the CPU and writes images; a GPU device, a bundle without int8 graphs and a PixArt
 * pipeline are refused, each with one line saying what to do instead.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readManifest } from "../../lib/bundle/read.ts";
import { readNpy } from "../../lib/io/npy.ts";
import { readPng } from "../../lib/io/png.ts";
import { FIXTURES, TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { relError } from "../support.ts";
import { lines, runFora } from "./run.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-int8-test-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

const bundles = new Map<string, Promise<string>>();
/** The tiny fixture converted once per precision list. */
function tiny(precisions: string): Promise<string> {
  let p = bundles.get(precisions);
  if (!p) {
    p = (async () => {
      const dir = join(WORK, `tiny-${precisions.replace(",", "-")}`);
      const r = await runFora("convert", TINY_DIFFUSERS, dir, "--precision", precisions, "-q");
      assert.equal(r.code, 0, r.stderr);
      return dir;
    })();
    bundles.set(precisions, p);
  }
  return p;
}

/** generate with 8 DDIM steps, N = 2, two classes; returns the final latents. */
async function generate(model: string, precision: string, name: string): Promise<Float32Array> {
  const out = join(WORK, name);
  const r = await runFora(
    "generate",
    "-m",
    model,
    "--precision",
    precision,
    "--sampler",
    "ddim",
    "--steps",
    "8",
    "-N",
    "2",
    "--class",
    "3",
    "--class",
    "7",
    "--seed",
    "5",
    "-o",
    out,
    "--latents-out",
    join(WORK, `${name}.npy`),
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  for (const file of ["fora-seed5-0-class3.png", "fora-seed5-1-class7.png"]) {
    const img = await readPng(join(out, file));
    assert.deepEqual([img.width, img.height, img.channels], [16, 16, 3], file);
  }
  return (await readNpy(join(WORK, `${name}.npy`))).data as Float32Array;
}

Deno.test("convert --precision fp32,int8 adds int8 graphs and weights; generate --precision int8 writes images close to fp32's", async () => {
  const dir = await tiny("fp32,int8");
  const m = await readManifest(dir);
  const int8 = m.dit.graphs.filter((g) => g.precision === "int8");
  assert.equal(int8.length, m.dit.graphs.length / 2, "every fp32 graph has its int8 twin");
  assert.ok(int8.every((g) => g.attention === "portable" && g.file.endsWith(".int8.onnx")));
  assert.ok(m.files.some((f) => f.path === "weights/dit-int8.safetensors"), "the quantized weights are listed (and hashed)");
  assert.deepEqual(m.vae?.graphs.map((g) => g.precision), ["fp32"], "int8 runs decode with the fp32 VAE");

  const x8 = await generate(dir, "int8", "int8"), x32 = await generate(dir, "fp32", "fp32");
  // Measured 9.7e-3 on this fixture: int8 rounding, carried through 8 steps.
  const err = relError(x8, x32);
  assert.ok(err > 1e-4 && err < 5e-2, `final latents, int8 vs fp32: ${err}`);
});

Deno.test("--precision int8 with --device cuda or webgpu is refused before sampling (exit 2)", async () => {
  const dir = await tiny("fp32,int8");
  for (const device of ["cuda", "webgpu"]) {
    const r = await runFora(
      "generate",
      "-m",
      dir,
      "--precision",
      "int8",
      "--device",
      device,
      "--steps",
      "4",
      "-o",
      join(WORK, device),
      "--json",
    );
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      `error: --precision int8 runs on the CPU only; use --device cpu, or --precision fp16 with --device ${device}`,
    ]);
    assert.ok(!r.stdout.includes('"event":"step"'), "nothing was sampled");
  }
});

Deno.test("a bundle without int8 graphs refuses --precision int8 with the convert command that adds them (exit 1)", async () => {
  const dir = await tiny("fp32");
  const r = await runFora("generate", "-m", dir, "--precision", "int8", "--steps", "4", "-o", join(WORK, "none"), "--json");
  assert.equal(r.code, 1, r.stderr);
  const [line, ...rest] = lines(r.stderr);
  assert.deepEqual(rest, []);
  assert.ok(
    line.startsWith(`error: ${dir}: bundle has no int8 DiT graphs (it has fp32); convert the model again with fora convert `),
    line,
  );
  assert.ok(line.endsWith(" NEW_BUNDLE --precision fp32,int8"), line);
});

Deno.test("convert --precision int8 alone still builds the fp32 VAE decoder; a PixArt pipeline refuses int8 (exit 2)", async () => {
  const dir = await tiny("int8");
  const m = await readManifest(dir);
  assert.deepEqual([...new Set(m.dit.graphs.map((g) => g.precision))], ["int8"]);
  assert.deepEqual(m.vae?.graphs.map((g) => g.precision), ["fp32"]);
  await generate(dir, "int8", "int8-only");

  const r = await runFora("convert", join(FIXTURES, "pixart-tiny", "diffusers"), join(WORK, "pixart"), "--precision", "fp32,int8", "-q");
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(lines(r.stderr), [
    "error: --precision int8 is built for DiT bundles only; convert this PixArt-alpha model with fp32 and/or fp16",
  ]);
});

Deno.test("profile --precision int8 attributes the int8 linears to attn and mlp, counting the operations fp32 counts (1%)", async () => {
  const dir = await tiny("fp32,int8");
  const rows = async (precision: string) => {
    const r = await runFora("profile", "-m", dir, "--precision", precision, "--steps", "6", "--json");
    assert.equal(r.code, 0, r.stderr);
    return lines(r.stdout).map((l) => JSON.parse(l)).filter((row) =>
      row.kind === "full" && (row.branch === "attn" || row.branch === "mlp")
    );
  };
  const q8 = await rows("int8"), f32 = await rows("fp32");
  assert.equal(q8.length, 4, "attn and mlp of both blocks");
  for (const row of q8) {
    const twin = f32.find((r) => r.block === row.block && r.branch === row.branch);
    // fp32 adds each bias in its own kernel; int8 adds it inside DynamicQuantizeMatMul, uncounted.
    assert.ok(Math.abs(row.flops_per_step / twin.flops_per_step - 1) < 0.01, `block ${row.block} ${row.branch}`);
  }
});
