/**
 * `fora eval`: sample N images from a pixel-space class-conditional bundle (classes
 * cycled, sample i seeded from (seed, i)), score them with the classifier, and report
 * class accuracy and the Fréchet distance between the classifier's penultimate features
 * of the samples and of the Fashion-MNIST test set (a small-scale stand-in for FID).
 */
import { ForaError } from "../errors.ts";
import { type GeneratorSettings, openGenerator } from "../generator.ts";
import type { StepReport } from "../fora/denoiser.ts";
import { describePolicy } from "../fora/policy.ts";
import { summarizeSteps } from "../events/totals.ts";
import { openClassifier } from "./classifier.ts";
import { fitGaussian, frechetDistance } from "./frechet.ts";

export interface EvalOptions extends GeneratorSettings {
  samples: number;
  batch: number;
  seed: number;
  classifier: string;
}

export interface EvalProgress {
  event: "batch";
  done: number;
  samples: number;
  accuracy: number;
}

export interface EvalSummary {
  event: "summary";
  samples: number;
  accuracy: number;
  /** Fréchet distance of classifier features vs the test set; null below 2 samples. */
  frechet_distance: number | null;
  per_class_accuracy: (number | null)[];
  sampler: string;
  steps: number;
  policy: { name: string; params: Record<string, number> };
  full_steps: number;
  reuse_steps: number;
  sampling_ms: number;
  ms_per_image: number;
  speedup_estimate: number | null;
}

export async function evaluate(opts: EvalOptions, onProgress?: (p: EvalProgress) => void): Promise<EvalSummary> {
  const gen = await openGenerator(opts);
  const classifier = await openClassifier(opts.classifier, opts.threads);
  try {
    const [, C, H] = gen.latentShape(1);
    if (gen.manifest.space !== "pixel" || C !== 1 || H !== classifier.inputSize) {
      throw new ForaError(
        "usage",
        `${opts.model}: fora eval scores 1-channel ${classifier.inputSize}x${classifier.inputSize} pixel-space models (this one is ${gen.manifest.space}, ${C}x${H}x${H})`,
      );
    }
    const K = gen.manifest.dit.config.numClasses;
    const features = new Float32Array(opts.samples * classifier.featureSize);
    const correct = new Array<number>(K).fill(0), total = new Array<number>(K).fill(0);
    const steps: StepReport[] = [];
    let samplingMs = 0, batches = 0;
    for (let first = 0; first < opts.samples; first += opts.batch) {
      const n = Math.min(opts.batch, opts.samples - first);
      const classes = Array.from({ length: n }, (_, i) => (first + i) % K);
      const r = await gen.sampleBatch({ classes, seed: opts.seed, firstIndex: first }, (s) => steps.push(s));
      samplingMs += r.samplingMs;
      batches++;
      const scored = await classifier.classify(r.x0.map((v) => Math.max(-1, Math.min(1, v))), n);
      features.set(scored.features, first * classifier.featureSize);
      scored.labels.forEach((label, i) => {
        total[classes[i]]++;
        if (label === classes[i]) correct[classes[i]]++;
      });
      const done = first + n;
      onProgress?.({ event: "batch", done, samples: opts.samples, accuracy: sum(correct) / done });
    }
    const s = summarizeSteps(steps);
    return {
      event: "summary",
      samples: opts.samples,
      accuracy: sum(correct) / opts.samples,
      frechet_distance: opts.samples >= 2
        ? frechetDistance(fitGaussian(features, opts.samples, classifier.featureSize), classifier.reference)
        : null,
      per_class_accuracy: correct.map((c, k) => (total[k] ? c / total[k] : null)),
      sampler: opts.sampler,
      steps: opts.steps,
      policy: describePolicy(opts.policy),
      // Per batch, as they ran (a dynamic policy decides per step: then the mean over the batches).
      full_steps: s.full_steps / batches,
      reuse_steps: s.reuse_steps / batches,
      sampling_ms: Math.round(samplingMs),
      ms_per_image: Math.round((samplingMs / opts.samples) * 100) / 100,
      speedup_estimate: s.speedup_estimate,
    };
  } finally {
    await classifier.release();
    await gen.release();
  }
}

function sum(a: number[]): number {
  return a.reduce((x, y) => x + y, 0);
}
