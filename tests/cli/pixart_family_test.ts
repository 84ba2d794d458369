/**
 * `fora convert` and `fora generate` (the real CLI, a subprocess) on PixArt pipelines of the rest
 * of the family, assembled from fixtures/pixart-tiny (T5, tokenizer, VAE, scheduler) and a
 * transformer of fixtures/pixart-family: PixArt-alpha 1024-MS (micro-conditions, in diffusers and
 * original names), PixArt-Sigma (PixArtSigmaPipeline: 300-token captions, a VAE whose
 * scaling_factor is not 0.18215), and the Sigma options fora refuses (key/value compression).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyTree, FIXTURES } from "../bundle/helpers.ts";
import { lines, runFora } from "./run.ts";
import type { PixartManifest } from "../../lib/bundle/pixart_manifest.ts";
import { readPixartManifest } from "../../lib/bundle/read.ts";
import { PIXART_DDIM_DEFAULT } from "../../lib/bundle/scheduler_config.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-pixart-family-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

interface Pipeline {
  transformer: string;
  /** Folder holding the transformer's weights, when not `transformer` itself (original names). */
  weights?: string;
  pipelineClass?: string;
  vaeScaling?: number;
  transformerConfig?: Record<string, unknown>;
}

let counter = 0;
async function pipeline(p: Pipeline): Promise<string> {
  const src = join(WORK, `pipe-${counter++}`);
  await copyTree(join(FIXTURES, "pixart-tiny", "diffusers"), src);
  await Deno.remove(join(src, "transformer"), { recursive: true });
  const family = join(FIXTURES, "pixart-family", p.transformer);
  await copyTree(join(family, "transformer"), join(src, "transformer"));
  if (p.weights) {
    await Deno.remove(join(src, "transformer", "diffusion_pytorch_model.safetensors"));
    await copyTree(join(family, p.weights), join(src, "transformer"));
  }
  const edit = async (path: string, fn: (o: Record<string, unknown>) => void) => {
    const o = JSON.parse(await Deno.readTextFile(path));
    fn(o);
    await Deno.writeTextFile(path, JSON.stringify(o, null, 2));
  };
  if (p.pipelineClass) await edit(join(src, "model_index.json"), (o) => (o._class_name = p.pipelineClass));
  if (p.vaeScaling) await edit(join(src, "vae", "config.json"), (o) => (o.scaling_factor = p.vaeScaling));
  if (p.transformerConfig) await edit(join(src, "transformer", "config.json"), (o) => Object.assign(o, p.transformerConfig));
  return src;
}

async function convert(src: string): Promise<{ dir: string; manifest: PixartManifest }> {
  const dir = `${src}-bundle`;
  const r = await runFora("convert", src, dir, "--precision", "fp32", "-q");
  assert.equal(r.code, 0, r.stderr);
  return { dir, manifest: JSON.parse(await Deno.readTextFile(join(dir, "manifest.json"))) };
}

async function generate(dir: string, prompt: string, name: string): Promise<Uint8Array> {
  const out = join(dir, `${name}.png`);
  const r = await runFora("generate", "-m", dir, "--prompt", prompt, "--steps", "4", "-N", "2", "--seed", "3", "-o", out, "--json");
  assert.equal(r.code, 0, r.stderr);
  return await Deno.readFile(out);
}

Deno.test("a PixArt-alpha 1024-MS pipeline (micro-conditions) converts in both namings to the same model and samples", async () => {
  const a = await convert(await pipeline({ transformer: "alpha-1024-ms" }));
  const c = a.manifest.pixart.config;
  assert.equal(c.microConditions, true);
  assert.equal(c.interpolationScale, 2);
  assert.equal(c.maxTokens, 120);
  assert.equal(a.manifest.pixart.conventions.family, "alpha");
  assert.equal(a.manifest.pixart.conventions.vaeScaleFactor, 2, "the tiny VAE has two levels");
  const b = await convert(await pipeline({ transformer: "alpha-1024-ms", weights: "original" }));
  assert.equal(b.manifest.pixart.naming, "original");
  const prompt = "A small cactus with a happy face in the Sahara desert.";
  const imageA = await generate(a.dir, prompt, "a");
  // the original checkpoint carries the learned null caption, so only the conditional half agrees: compare at cfg 1
  const plain = async (dir: string) => {
    const out = join(dir, "plain.png");
    const r = await runFora("generate", "-m", dir, "--prompt", prompt, "--steps", "4", "--cfg", "1", "--seed", "3", "-o", out);
    assert.equal(r.code, 0, r.stderr);
    return await Deno.readFile(out);
  };
  assert.deepEqual(await plain(b.dir), await plain(a.dir));
  assert.ok(imageA.length > 0);
  const info = await runFora("info", a.dir);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /PixArt-alpha.*\n.*positions \/ 2; micro-conditions \(resolution = latent x 2\)/);
});

Deno.test("a PixArtSigmaPipeline converts with 300-token captions and its VAE's scaling factor, both used when sampling", async () => {
  const sigma = await convert(await pipeline({ transformer: "sigma", pipelineClass: "PixArtSigmaPipeline", vaeScaling: 0.13025 }));
  assert.equal(sigma.manifest.pixart.config.maxTokens, 300);
  assert.equal(sigma.manifest.pixart.config.interpolationScale, 0.5);
  assert.equal(sigma.manifest.pixart.conventions.family, "sigma");
  assert.equal(sigma.manifest.vae!.config.scalingFactor, 0.13025);
  const info = await runFora("info", sigma.dir);
  assert.match(info.stdout, /PixArt-sigma/);
  assert.match(info.stdout, /captions 300 tokens/);
  // two prompts that differ only after their 130th token ("a" is one): one caption when cut at 120 tokens, two at 300
  const [fox, horse] = ["a red fox in a snowy forest", "an astronaut riding a green horse"].map((t) => "a ".repeat(130) + t);
  const foxImage = await generate(sigma.dir, fox, "fox");
  assert.notDeepEqual(await generate(sigma.dir, horse, "horse"), foxImage);
  const alpha = await convert(await pipeline({ transformer: "sigma", vaeScaling: 0.13025 }));
  assert.equal(alpha.manifest.pixart.config.maxTokens, 120);
  assert.deepEqual(await generate(alpha.dir, horse, "horse"), await generate(alpha.dir, fox, "fox"));
  // the scaling factor reaches the decoder: the same latent decodes differently at 0.18215
  const sd = await convert(await pipeline({ transformer: "sigma", pipelineClass: "PixArtSigmaPipeline", vaeScaling: 0.18215 }));
  assert.notDeepEqual(await generate(sd.dir, fox, "fox"), foxImage);
});

Deno.test("PixArt-Sigma's key/value token compression and query/key norms are refused in one line naming the config key (exit 1)", async () => {
  const src = await pipeline({ transformer: "sigma", transformerConfig: { kv_compress_config: { sampling: "conv", scale_factor: 2 } } });
  const r = await runFora("convert", src, `${src}-bundle`, "-q");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"kv_compress_config" asks for key\/value token compression, which fora does not run/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  const qk = await pipeline({ transformer: "sigma", transformerConfig: { qk_norm: true } });
  const q = await runFora("convert", qk, `${qk}-bundle`, "-q");
  assert.equal(q.code, 1);
  assert.match(q.stderr, /"qk_norm" asks for query\/key normalisation/);
});

Deno.test("a PixArt bundle written before the family fields loads as PixArt-alpha (scale 1, no micro-conditions) with PixArt's published scheduler; out-of-range values are refused", async () => {
  const src = join(WORK, `pipe-${counter++}`);
  await copyTree(join(FIXTURES, "pixart-tiny", "diffusers"), src);
  const { dir } = await convert(src);
  const prompt = "A small cactus with a happy face in the Sahara desert.";
  const current = await generate(dir, prompt, "current");
  const path = join(dir, "manifest.json");
  const written = JSON.parse(await Deno.readTextFile(path));
  const write = (fn: (m: PixartManifest) => void) => {
    const m = structuredClone(written);
    fn(m);
    return Deno.writeTextFile(path, JSON.stringify(m, null, 2));
  };
  // what an earlier fora wrote: none of the five fields
  await write((m) => {
    const c = m.pixart.config as unknown as Record<string, unknown>, conv = m.pixart.conventions as unknown as Record<string, unknown>;
    delete c.interpolationScale, delete c.microConditions, delete conv.family, delete conv.vaeScaleFactor;
    delete (m.pixart as Partial<PixartManifest["pixart"]>).scheduler;
  });
  assert.deepEqual((await readPixartManifest(dir)).pixart.scheduler, PIXART_DDIM_DEFAULT);
  const info = await runFora("info", dir, "--json");
  assert.equal(info.code, 0, info.stderr);
  const described = JSON.parse(info.stdout);
  assert.equal(described.config.interpolationScale, 1);
  assert.equal(described.config.microConditions, false);
  assert.equal(described.conventions.family, "alpha");
  assert.equal(described.conventions.vaeScaleFactor, 2, "the tiny VAE's factor");
  assert.deepEqual(await generate(dir, prompt, "earlier"), current);

  const refused = async (fn: (m: PixartManifest) => void, message: RegExp) => {
    await write(fn);
    const r = await runFora("info", dir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
  };
  await refused(
    (m) => (m.pixart.config.interpolationScale = 0),
    /"pixart\.config\.interpolationScale" must be a number above 0 and at most 64/,
  );
  await refused((m) => (m.pixart.config.interpolationScale = 1e6), /"pixart\.config\.interpolationScale" must be a number above 0/);
  await refused(
    (m) => (m.pixart.config.microConditions = "yes" as unknown as boolean),
    /"pixart\.config\.microConditions" must be true or false/,
  );
  await refused((m) => (m.pixart.config.microConditions = true), /"pixart\.config\.microConditions" needs a hiddenSize divisible by 3/);
  await refused((m) => (m.pixart.conventions.family = "gamma" as "alpha"), /"pixart\.conventions\.family" must be one of "alpha", "sigma"/);
  await refused((m) => (m.pixart.conventions.vaeScaleFactor = 0), /"pixart\.conventions\.vaeScaleFactor" must be an integer from 1 to 64/);
  await refused(
    (m) => (m.pixart.scheduler.timestepSpacing = "uniform" as "leading"),
    /"pixart\.scheduler\.timestepSpacing" must be one of "leading", "linspace", "trailing"/,
  );
});
