/**
 * Per-sample seeds. A run has one seed; sample `index` of the run gets its own generator, so a
 * sample's noise does not depend on the batch size or on which batch it falls in.
 *
 * sampleSeed(seed, index) is output number `index` (counting from 0) of SplitMix64 (Steele, Lea,
 * Flood 2014; Vigna's splitmix64.c) started from state `seed`, i.e. with all arithmetic
 * unsigned modulo 2^64:
 *
 *   z = seed + (index + 1) * 0x9E3779B97F4A7C15
 *   z = (z XOR (z >> 30)) * 0xBF58476D1CE4E5B9
 *   z = (z XOR (z >> 27)) * 0x94D049BB133111EB
 *   return z XOR (z >> 31)
 *
 * The generator of sample `index` is createRng(sampleSeed(seed, index), DEFAULT_STREAM).
 */
import { ForaError } from "../errors.ts";
import { createRng, DEFAULT_STREAM, fillNormal, type Rng, toUint64 } from "./pcg32.ts";

const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;

function mix64(z: bigint): bigint {
  z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
}

/** The seed of sample `index` of a run seeded with `seed` (an unsigned 64-bit bigint). */
export function sampleSeed(seed: bigint | number, index: number): bigint {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new ForaError("usage", `sample index ${index} must be a non-negative integer`);
  }
  return mix64(BigInt.asUintN(64, toUint64(seed) + BigInt(index + 1) * GOLDEN_GAMMA));
}

/** The generator of sample `index` of a run seeded with `seed`. */
export function sampleRng(seed: bigint | number, index: number): Rng {
  return createRng(sampleSeed(seed, index), DEFAULT_STREAM);
}

/** Generators for samples first, first+1, ..., first+count-1 of a run. */
export function sampleRngs(seed: bigint | number, count: number, first = 0): Rng[] {
  return Array.from({ length: count }, (_, b) => sampleRng(seed, first + b));
}

/**
 * `perSample` normals from each generator in turn, concatenated: sample b's values fill
 * [b*perSample, (b+1)*perSample). With perSample = C*H*W this is a [B, C, H, W] latent.
 */
export function batchNormals(rngs: readonly Rng[], perSample: number): Float32Array {
  const out = new Float32Array(rngs.length * perSample);
  rngs.forEach((rng, b) => fillNormal(rng, out, b * perSample, perSample));
  return out;
}
