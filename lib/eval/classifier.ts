/**
 * The Fashion-MNIST classifier that scores pixel-space samples: ONNX graph with input
 * `images` [n, 1, 32, 32] in [-1, 1] and outputs `logits` [n, 10] and `features`
 * [n, F] (penultimate layer), plus the Gaussian of its features on the test set.
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";
import { f32, openSession, type Session } from "../runtime/session.ts";
import { readSafetensorsHeader, readTensorF32 } from "../weights/safetensors.ts";
import type { Gaussian } from "./frechet.ts";

export interface Classifier {
  readonly inputSize: number;
  readonly featureSize: number;
  /** Reference feature statistics (the test set). */
  readonly reference: Gaussian;
  classify(images: Float32Array, n: number): Promise<{ labels: number[]; features: Float32Array }>;
  release(): Promise<void>;
}

export async function openClassifier(dir: string, threads?: number): Promise<Classifier> {
  const stats = await readStats(join(dir, "test_stats.safetensors"));
  let session: Session;
  try {
    session = await openSession(join(dir, "classifier.onnx"), { threads });
  } catch (e) {
    throw new ForaError("bundle", `${dir}: cannot load the classifier (${(e as Error).message})`);
  }
  const F = stats.mu.length, size = 32;
  return {
    inputSize: size,
    featureSize: F,
    reference: stats,
    async classify(images, n) {
      const out = await session.run({ images: f32([n, 1, size, size], images) });
      const logits = out.logits.data as Float32Array, k = logits.length / n;
      const labels = Array.from({ length: n }, (_, i) => argmax(logits.subarray(i * k, (i + 1) * k)));
      return { labels, features: out.features.data as Float32Array };
    },
    release: () => session.release(),
  };
}

async function readStats(path: string): Promise<Gaussian> {
  const h = await readSafetensorsHeader(path);
  const mu = h.tensors.get("mu"), sigma = h.tensors.get("sigma");
  if (!mu || !sigma) throw new ForaError("bundle", `${path}: needs tensors "mu" and "sigma"`);
  return { mu: Float64Array.from(await readTensorF32(mu)), sigma: Float64Array.from(await readTensorF32(sigma)) };
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
