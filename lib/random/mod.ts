/**
 * Seedable randomness: PCG32 + Box–Muller (pcg32.ts) and per-sample seeds by SplitMix64
 * (seed.ts). Both modules document their algorithms exactly.
 */
export { createRng, DEFAULT_STREAM, fillNormal, nextUint32, normal, normal64, type Rng, toUint64, uniform53 } from "./pcg32.ts";
export { batchNormals, sampleRng, sampleRngs, sampleSeed } from "./seed.ts";
