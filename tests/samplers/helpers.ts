/** Shared pieces of the sampler tests: toy denoisers and a float64 view of expected values. */
import type { Denoiser, LatentShape } from "../../lib/samplers/types.ts";

/**
 * The toy model of reference_samplers.py (t = model time, c = channel, j = h*W + w):
 *   eps = 0.6 x + 0.3 sin(1.7 x + 0.01 t + 0.5 c + 0.05 j);  v = tanh(0.5 x - 0.001 t + 0.1 c)
 */
export function toyModel(
  shape: LatentShape,
  learnSigma: boolean,
  calls?: { x: Float32Array; index: number; modelTime: number }[],
): Denoiser {
  const { batch, channels: C, height, width } = shape, hw = height * width, outC = learnSigma ? 2 * C : C;
  return (x, step) => {
    calls?.push({ x: Float32Array.from(x), ...step });
    const t = step.modelTime;
    const out = new Float32Array(batch * outC * hw);
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < C; c++) {
        for (let j = 0; j < hw; j++) {
          const xv = x[(b * C + c) * hw + j];
          out[(b * outC + c) * hw + j] = 0.6 * xv + 0.3 * Math.sin(1.7 * xv + 0.01 * t + 0.5 * c + 0.05 * j);
          if (learnSigma) out[(b * outC + C + c) * hw + j] = Math.tanh(0.5 * xv - 0.001 * t + 0.1 * c);
        }
      }
    }
    return Promise.resolve(out);
  };
}

/** A model that returns the same output at every step. */
export function constantModel(out: Float32Array): Denoiser {
  return () => Promise.resolve(Float32Array.from(out));
}

/** max |a - b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Relative closeness of two scalars. */
export function close(a: number, b: number, rel: number): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));
}
