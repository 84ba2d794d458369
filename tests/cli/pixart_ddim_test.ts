/**
 * Whole PixArt runs against diffusers' pipelines: a pipeline folder (fixtures/pixart-tiny's T5,
 * tokenizer and VAE with a transformer of fixtures/pixart-family, the golden's pipeline class and
 * scheduler config) through the real `fora convert` and `fora generate --sampler ddim --cfg 4.5
 * -N 2` (cross-attention cached) from the golden's x_T, against the float64 reference of the
 * pipeline's DDIM loop with FORA's literal per-layer cache (fixtures/pixart-ddim, written by
 * tools/reference/make_pixart_ddim_goldens.py): PixArt-alpha 512 and PixArt-Sigma (a caption of
 * more than 120 tokens) with PixArt's published scheduler config, PixArt-alpha 1024-MS
 * (micro-conditions at a 6 x 10 latent) with "leading" timesteps, steps_offset 1, no x0
 * clipping and set_alpha_to_one false. The final latent is within 1e-3 relative of the
 * reference, at N=2 and at N=1, and the two differ.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyTree, FIXTURES } from "../bundle/helpers.ts";
import { runFora } from "./run.ts";
import { readGolden, relError } from "../support.ts";
import { readSafetensorsHeader } from "../../lib/weights/safetensors.ts";
import { readNpy, writeNpy } from "../../lib/io/npy.ts";
import type { PixartManifest } from "../../lib/bundle/pixart_manifest.ts";
import { planDdim } from "../../lib/samplers/ddim.ts";
import { loadT5Tokenizer } from "../../lib/text/tokenizer.ts";
import { preprocessPrompt } from "../../lib/text/clean.ts";
import type { DiffusersDdimConfig } from "../../lib/samplers/diffusers_schedule.ts";

const TOL = 1e-3;
const WORK = await Deno.makeTempDir({ prefix: "fora-pixart-ddim-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

/** The golden's tensors and what its metadata says the run was. */
async function golden(name: string) {
  const path = join(FIXTURES, "pixart-ddim", `${name}.safetensors`);
  const meta = (await readSafetensorsHeader(path)).metadata;
  const tensors = await readGolden(path);
  const G = (key: string) => tensors.get(key)!;
  return {
    G,
    prompt: meta.prompt,
    steps: Number(meta.steps),
    guidance: meta.guidance_scale,
    interval: Number(meta.interval),
    pipelineClass: meta.pipeline_class,
    schedulerConfig: meta.scheduler_config,
  };
}

/** The pipeline folder the golden was made from: pixart-tiny with the family's transformer, class and scheduler config. */
async function pipeline(name: string, pipelineClass: string, schedulerConfig: string): Promise<string> {
  const src = join(WORK, name);
  await copyTree(join(FIXTURES, "pixart-tiny", "diffusers"), src);
  await Deno.remove(join(src, "transformer"), { recursive: true });
  await copyTree(join(FIXTURES, "pixart-family", name, "transformer"), join(src, "transformer"));
  const index = JSON.parse(await Deno.readTextFile(join(src, "model_index.json")));
  await Deno.writeTextFile(join(src, "model_index.json"), JSON.stringify({ ...index, _class_name: pipelineClass }, null, 2));
  await Deno.writeTextFile(join(src, "scheduler", "scheduler_config.json"), schedulerConfig);
  return src;
}

const RUNS: [name: string, what: string, scheduler: Partial<DiffusersDdimConfig>][] = [
  ["alpha-512", "PixArt-alpha 512, published scheduler config", { timestepSpacing: "linspace", clipSample: true, setAlphaToOne: true }],
  [
    "alpha-1024-ms",
    "PixArt-alpha 1024-MS, micro-conditions at 12 x 20 px",
    { timestepSpacing: "leading", stepsOffset: 1, clipSample: false, setAlphaToOne: false },
  ],
  ["sigma", "PixArt-Sigma, a 139-token caption, published scheduler config", { timestepSpacing: "linspace", clipSample: true }],
];

for (const [name, what, scheduler] of RUNS) {
  Deno.test(`${what}: converted and sampled with DDIM, cfg 4.5, FORA N=2, to diffusers' float64 latent within ${TOL}`, async () => {
    const g = await golden(name);
    const src = await pipeline(name, g.pipelineClass, g.schedulerConfig);
    const dir = `${src}-bundle`;
    const conv = await runFora("convert", src, dir, "--precision", "fp32", "-q");
    assert.equal(conv.code, 0, conv.stderr);
    const manifest: PixartManifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
    assert.deepEqual({ ...manifest.pixart.scheduler, ...scheduler }, manifest.pixart.scheduler, "the recorded scheduler config");
    // the same timesteps and the same tokens as the reference
    assert.deepEqual(planDdim({ steps: g.steps, diffusers: manifest.pixart.scheduler }).modelTimes, [...g.G("timesteps").data]);
    const tokenizer = await loadT5Tokenizer(join(dir, "tokenizer"));
    const tok = tokenizer.encode(preprocessPrompt(g.prompt), manifest.pixart.conventions.maxTokens);
    assert.deepEqual(tok.inputIds.slice(0, tok.length), [...g.G("ids").data]);

    const xT = g.G("x_t"), [, , height, width] = xT.shape;
    const latentsIn = join(WORK, `${name}-xT.npy`);
    await writeNpy(latentsIn, { shape: xT.shape, data: xT.data });
    const factor = manifest.pixart.conventions.vaeScaleFactor!;
    const run = async (interval: number) => {
      const out = join(WORK, `${name}-N${interval}.npy`);
      const r = await runFora(
        "generate",
        ...["-m", dir, "--prompt", g.prompt, "--sampler", "ddim", "--steps", String(g.steps), "--cfg", g.guidance],
        ...["-N", String(interval), "--cache-cross-attn", "on", "--latents-in", latentsIn, "--latents-out", out],
        ...["--width", String(width * factor), "--height", String(height * factor), "--no-resolution-binning"],
        ...["-o", join(WORK, `${name}-N${interval}.png`)],
      );
      assert.equal(r.code, 0, r.stderr);
      return (await readNpy(out)).data;
    };
    const cached = await run(g.interval);
    const errCached = relError(cached, g.G("latent").data);
    const plain = await run(1);
    const errPlain = relError(plain, g.G("latent_n1").data);
    const apart = relError(plain, g.G("latent").data);
    console.log(
      `${name}: N=${g.interval} ${errCached.toExponential(2)}, N=1 ${errPlain.toExponential(2)}, N=1 vs N=2 golden ${apart.toFixed(3)}`,
    );
    assert.ok(errCached <= TOL, `N=${g.interval}: relative error ${errCached} > ${TOL}`);
    assert.ok(errPlain <= TOL, `N=1: relative error ${errPlain} > ${TOL}`);
    assert.ok(apart > 10 * TOL, `a run without caching should miss the N=${g.interval} golden (${apart})`);
  });
}
