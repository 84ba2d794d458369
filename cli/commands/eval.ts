/** `fora eval`: class accuracy and Fréchet distance of generated samples, scored by a classifier. */
import { Command, Option } from "@commander-js/extra-typings";
import { DEFAULT_CLASSIFIER } from "../../lib/defaults.ts";
import { MAX_BATCH, MAX_NUM } from "../../lib/sample/plan.ts";
import { type EvalProgress, type EvalSummary, evaluate } from "../../lib/eval/evaluate.ts";
import { ndjsonWriter } from "../../lib/events/ndjson.ts";
import { printLine } from "../../lib/events/output.ts";
import { resolveRun } from "../../lib/resolve.ts";
import {
  cfgChannelsOption,
  cfgOption,
  deviceOption,
  givenFlags,
  modelOption,
  positiveInt,
  precisionOption,
  samplerOption,
  seedOption,
  stepsOption,
  threadsOption,
  withCacheOptions,
} from "../sampling_options.ts";

export function evalCommand() {
  const command = withCacheOptions(
    new Command("eval")
      .summary("score generated samples: class accuracy and Fréchet distance")
      .description(
        "Generate --samples images (classes cycled 0, 1, 2, ...; sample i seeded from --seed and i) with " +
          "any generation flags, classify them with the shipped Fashion-MNIST classifier, and report the " +
          "class accuracy and the Fréchet distance between the classifier's penultimate features of the " +
          "samples and of the Fashion-MNIST test set (a small-scale stand-in for FID; lower is better, and " +
          "it depends on the number of samples, so compare runs of the same size).",
      )
      .addOption(modelOption())
      .option("--samples <n>", "images to generate", positiveInt("--samples", MAX_NUM), 1000)
      .option("--batch <n>", "images per model call", positiveInt("--batch", MAX_BATCH), 50)
      .addOption(samplerOption())
      .addOption(stepsOption())
      .addOption(cfgOption())
      .addOption(cfgChannelsOption())
      .addOption(seedOption()),
  );
  return command
    .addOption(
      new Option("--classifier <dir>", "classifier folder (classifier.onnx, test_stats.safetensors)").default(
        DEFAULT_CLASSIFIER,
        "the shipped one",
      ),
    )
    .option("--json", "NDJSON: a line per batch, then a summary object")
    .addOption(precisionOption())
    .addOption(threadsOption())
    .addOption(deviceOption())
    .addHelpText(
      "after",
      `
Examples:
  fora eval --samples 1000 -N 1
  fora eval --samples 1000 -N 3 --sampler ddim --steps 50 --json | tail -1
  fora eval --samples 1000 --sampler ddim --steps 50 --policy dynamic --threshold 0.1 --max-reuse 4
  (cache policies: fora generate --help)`,
    )
    .action(async (opts, cmd) => {
      const settings = await resolveRun({ ...opts, given: givenFlags(cmd) }, { family: "dit" });
      const json = opts.json ? ndjsonWriter<EvalProgress | EvalSummary>() : null;
      const progress = (p: EvalProgress) =>
        Deno.stderr.writeSync(
          new TextEncoder().encode(`\r${p.done}/${p.samples} samples, accuracy so far ${(100 * p.accuracy).toFixed(1)}%`),
        );
      const summary = await evaluate(
        { ...settings, samples: opts.samples, batch: opts.batch, seed: opts.seed, classifier: opts.classifier ?? DEFAULT_CLASSIFIER },
        json ? json.write : progress,
      );
      if (json) {
        json.write(summary);
      } else {
        console.error("");
        printLine(formatSummary(summary));
      }
    });
}

function formatSummary(s: EvalSummary): string {
  const rows = [
    ["samples", String(s.samples)],
    ["sampler", `${s.sampler}, ${s.steps} steps`],
    ["cache policy", `${s.policy.name} ${JSON.stringify(s.policy.params)} (${s.full_steps} full, ${s.reuse_steps} reuse steps)`],
    ["class accuracy", `${(100 * s.accuracy).toFixed(2)}%`],
    ["Fréchet distance", s.frechet_distance === null ? "-" : s.frechet_distance.toFixed(3)],
    ["sampling", `${(s.sampling_ms / 1000).toFixed(1)} s (${s.ms_per_image} ms/image)`],
    ["speed-up estimate", s.speedup_estimate === null ? "-" : `${s.speedup_estimate.toFixed(2)}x`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}
