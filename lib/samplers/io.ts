/**
 * Checks at the sampler's edges: latent sizes, model output sizes, step counts. Every failure is
 * a ForaError naming what is wrong.
 */
import { ForaError } from "../errors.ts";
import { batchNormals } from "../random/seed.ts";
import type { LatentShape, SampleNoise } from "./types.ts";

/** Elements of one sample: C*H*W. */
export function sampleSize(shape: LatentShape): number {
  return shape.channels * shape.height * shape.width;
}

export function checkShape(shape: LatentShape, x: Float32Array): void {
  for (const k of ["batch", "channels", "height", "width"] as const) {
    const v = shape[k];
    if (!Number.isSafeInteger(v) || v < 1) throw new ForaError("usage", `latent ${k} ${v} must be a positive integer`);
  }
  const n = shape.batch * sampleSize(shape);
  if (x.length !== n) {
    const { batch, channels, height, width } = shape;
    throw new ForaError("usage", `initial latent has ${x.length} values; [${batch}, ${channels}, ${height}, ${width}] needs ${n}`);
  }
}

export function checkNoise(noise: SampleNoise, shape: LatentShape, sampler: string): void {
  if (noise.length !== shape.batch) {
    throw new ForaError("usage", `${sampler} needs one noise generator per sample: got ${noise.length} for batch ${shape.batch}`);
  }
}

/**
 * The initial latent x_T: C*H*W normals from each sample's generator, samples in order. Drawn
 * before the sampler runs, from the same generators the sampler then takes its noise from.
 */
export function initialLatent(shape: LatentShape, noise: SampleNoise): Float32Array {
  checkNoise(noise, shape, "the initial latent");
  return batchNormals(noise, sampleSize(shape));
}

/** Throws unless the model returned [B, outC, H, W] with outC = C, or 2C when learnSigma. */
export function checkOutput(out: Float32Array, shape: LatentShape, learnSigma: boolean, modelTime: number): void {
  const outC = learnSigma ? 2 * shape.channels : shape.channels;
  const want = shape.batch * outC * shape.height * shape.width;
  if (out.length !== want) {
    throw new ForaError(
      "runtime",
      `model returned ${out.length} values at t=${modelTime}; expected ${want} ([${shape.batch}, ${outC}, ${shape.height}, ${shape.width}]` +
        `${learnSigma ? ", eps and variance" : ", eps only"})`,
    );
  }
}

/**
 * The eps part of a checked model output as a [B, C, H, W] latent, and with learnSigma the
 * variance values, also [B, C, H, W]. Without learnSigma eps is the output itself (no copy).
 */
export function splitOutput(
  out: Float32Array,
  shape: LatentShape,
  learnSigma: boolean,
): { eps: Float32Array; v: Float32Array | null } {
  if (!learnSigma) return { eps: out, v: null };
  const n = sampleSize(shape);
  const eps = new Float32Array(shape.batch * n), v = new Float32Array(shape.batch * n);
  for (let b = 0; b < shape.batch; b++) {
    eps.set(out.subarray(2 * b * n, (2 * b + 1) * n), b * n);
    v.set(out.subarray((2 * b + 1) * n, (2 * b + 2) * n), b * n);
  }
  return { eps, v };
}

export function checkSteps(steps: number, max: number, sampler: string): void {
  if (!Number.isSafeInteger(steps) || steps < 1 || steps > max) {
    throw new ForaError("usage", `${sampler} steps ${steps} must be an integer from 1 to ${max}`);
  }
}
