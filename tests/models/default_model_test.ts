/**
 * The shipped default model (models/fashion-dit-bundle) and classifier
 * (models/fashion-classifier): the bundle loads and generates one image per class
 * through the real CLI, and the classifier's ONNX graph matches its PyTorch outputs.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { DEFAULT_CLASSIFIER, DEFAULT_MODEL } from "../../lib/defaults.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { openClassifier } from "../../lib/eval/classifier.ts";
import { readPng } from "../../lib/io/png.ts";
import { readNpy } from "../../lib/io/npy.ts";
import { readGolden, relError } from "../support.ts";
import { lines, runFora } from "../cli/run.ts";
import { withTempDir } from "../bundle/helpers.ts";

const CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"];

Deno.test("the classifier's ONNX graph matches its PyTorch outputs on the golden images (1e-4)", async () => {
  const golden = await readGolden(join(DEFAULT_CLASSIFIER, "golden.safetensors"));
  const c = await openClassifier(DEFAULT_CLASSIFIER, 1);
  try {
    const images = golden.get("images")!;
    const n = images.shape[0];
    const out = await c.classify(images.data, n);
    assert.ok(relError(out.features, golden.get("features")!.data) <= 1e-4);
    const logits = golden.get("logits")!.data, k = logits.length / n;
    const expected = Array.from({ length: n }, (_, i) => {
      const row = Array.from(logits.subarray(i * k, (i + 1) * k));
      return row.indexOf(Math.max(...row));
    });
    assert.deepEqual(out.labels, expected);
  } finally {
    await c.release();
  }
});

Deno.test("the shipped bundle is a pixel-space model without a VAE that names its classes", async () => {
  const m = await readManifest(DEFAULT_MODEL);
  assert.equal(m.space, "pixel");
  assert.equal(m.vae, null);
  assert.deepEqual(m.dit.classNames, CLASS_NAMES);
});

Deno.test("fora generate with no --model uses the shipped model: one visible image per class, by name", async () => {
  await withTempDir(async (dir) => {
    const args = CLASS_NAMES.flatMap((name) => ["--class", name]);
    const r = await runFora(
      "generate",
      ...args,
      "--sampler",
      "ddim",
      "--steps",
      "20",
      "--json",
      "-o",
      dir,
      "--latents-out",
      join(dir, "x0.npy"),
    );
    assert.equal(r.code, 0, r.stderr);
    const images = lines(r.stdout).map((l) => JSON.parse(l)).filter((e) => e.event === "image");
    assert.deepEqual(images.map((e) => e.class_name), CLASS_NAMES);
    for (const e of images) {
      const png = await readPng(e.path);
      assert.deepEqual([png.width, png.height, png.channels], [256, 256, 1], "32x32 enlarged 8x (nearest)");
    }
    // The original 32x32 size is kept in --latents-out.
    assert.deepEqual((await readNpy(join(dir, "x0.npy"))).shape, [10, 1, 32, 32]);
  });
});

Deno.test("fora eval on the shipped model: the classifier agrees with the requested class for at least 85% of samples (issue 18's target)", async () => {
  // Measured with `fora eval --samples 1000 --sampler ddim --steps 50 -N 3` (cfg 4): 96.1% (chance
  // 10%). The bound, issue 18's target of 85%, sits 11 points, 3.6 standard errors of a 40-sample
  // mean, below that; these 40 are that run's first 40 samples (same seeds). A pipeline that mixed
  // up labels, scaled pixels wrongly or broke the model would sit near chance.
  const r = await runFora("eval", "--samples", "40", "--batch", "40", "--sampler", "ddim", "--steps", "50", "-N", "3", "--json");
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(lines(r.stdout).at(-1)!);
  assert.equal(summary.event, "summary");
  assert.equal(summary.samples, 40);
  assert.ok(summary.accuracy >= 0.85, `accuracy ${summary.accuracy}`);
  assert.ok(Number.isFinite(summary.frechet_distance));
});

Deno.test("fora eval --policy: the summary names the policy and counts the steps as they ran", async () => {
  const r = await runFora(
    "eval",
    ...["--samples", "10", "--batch", "10", "--sampler", "ddim", "--steps", "20", "--policy", "forecast", "-N", "4", "--json"],
  );
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(lines(r.stdout).at(-1)!);
  assert.deepEqual(summary.policy, { name: "forecast", params: { interval: 4, order: 1 } });
  assert.equal(summary.full_steps, 6); // i = 19 and i % 4 == 0 for i = 16, 12, 8, 4, 0
  assert.equal(summary.full_steps + summary.reuse_steps, 20);
});
