/**
 * Streaming cosine similarity between the feature vectors of every pair of steps.
 *
 * A track (one layer and branch) receives one vector per step, in order. When step j
 * arrives, its inner products with every earlier step are taken at once, so only the
 * vectors themselves are kept, never more than S of them:
 *
 * - exact: the vectors as they are (S n 4 bytes per track);
 * - sketch: each vector reduced to k numbers by a seeded CountSketch (S k 8 bytes per
 *   track, plus one n-entry hash table shared by all tracks). Coordinate i goes to bucket
 *   h(i) with sign s(i): u[h(i)] += s(i) x[i], so <u, v> estimates <x, y> without bias and
 *   cos(u, v) estimates cos(x, y).
 *
 * Error of the sketch. With x, y unit vectors of cosine c and e = y - c x, the estimate's
 * first-order error is (1 - c^2) (c/2 (|Sx|^2 - 1) + sqrt(1 - c^2) <Sx, Se'> - c/2 (|Se'|^2 - 1))
 * with e' = e / |e|; for a CountSketch with random buckets and signs each of those
 * terms has standard deviation at most sqrt(2/k), 1/sqrt(k) and sqrt(2/k) whatever the
 * data, so
 *
 *     standard error of the estimated cosine <= sqrt(3) (1 - c^2) / sqrt(k)      (SKETCH_ERROR_FACTOR)
 *
 * and about (1 - c^2) / sqrt(k) when no few coordinates dominate the vectors (the estimate
 * then behaves like a sample correlation of k Gaussian pairs). Identical vectors give
 * exactly 1. With k = 1024: at most 0.054 at c = 0, 0.0053 at c = 0.95, 0.0011 at c = 0.99.
 * tests/similarity/gram_test.ts checks the bound on random data.
 */
import { createRng, nextUint32 } from "../random/pcg32.ts";

export const SKETCH_ERROR_FACTOR = Math.sqrt(3);

/** Bound on the standard error of a sketched cosine near `c` (module comment). */
export function sketchStandardError(c: number, k: number): number {
  return (SKETCH_ERROR_FACTOR * Math.max(0, 1 - c * c)) / Math.sqrt(k);
}

export interface GramTrack {
  /** Adds the next step's vector (copied or sketched: the caller may reuse its buffer). */
  add(v: Float32Array): void;
  readonly count: number;
  /** Cosine similarity matrix of the steps added so far, count x count, row-major. */
  cosine(): Float64Array;
}

/** Bytes a track keeps for `steps` vectors of n values: exact, or sketched to k. */
export function trackBytes(steps: number, n: number, sketchDim?: number): number {
  return sketchDim === undefined ? steps * n * 4 : steps * sketchDim * 8;
}

export function exactTrack(steps: number, n: number): GramTrack {
  const kept: Float32Array[] = [];
  const gram = new Float64Array(steps * steps);
  return {
    add(v) {
      if (v.length !== n) throw new RangeError(`exactTrack: vector of ${v.length} values, expected ${n}`);
      const j = kept.length;
      if (j >= steps) throw new RangeError(`exactTrack: more than ${steps} vectors`);
      const copy = Float32Array.from(v);
      for (let i = 0; i < j; i++) setSym(gram, steps, i, j, dot32(kept[i], copy));
      gram[j * steps + j] = dot32(copy, copy);
      kept.push(copy);
    },
    get count() {
      return kept.length;
    },
    cosine: () => normalise(gram, steps, kept.length),
  };
}

export interface CountSketch {
  readonly n: number;
  readonly k: number;
  readonly seed: number;
  /** Sketch of x (length n) into k buckets. */
  apply(x: Float32Array): Float64Array;
}

/** A seeded CountSketch from n to k dimensions: bucket and sign of each coordinate from PCG32. */
export function countSketch(n: number, k: number, seed: number): CountSketch {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`countSketch: k must be >= 1, got ${k}`);
  const rng = createRng(BigInt(seed), 0x5ce7c4n);
  // Bucket b with sign s stored as s * (b + 1).
  const table = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = nextUint32(rng);
    table[i] = (r & 1 ? 1 : -1) * ((Math.floor((r >>> 1) * (k / 2147483648)) % k) + 1);
  }
  return {
    n,
    k,
    seed,
    apply(x) {
      if (x.length !== n) throw new RangeError(`countSketch: vector of ${x.length} values, expected ${n}`);
      const u = new Float64Array(k);
      for (let i = 0; i < n; i++) {
        const t = table[i];
        if (t > 0) u[t - 1] += x[i];
        else u[-t - 1] -= x[i];
      }
      return u;
    },
  };
}

export function sketchTrack(steps: number, sketch: CountSketch): GramTrack {
  const kept: Float64Array[] = [];
  const gram = new Float64Array(steps * steps);
  return {
    add(v) {
      const j = kept.length;
      if (j >= steps) throw new RangeError(`sketchTrack: more than ${steps} vectors`);
      const u = sketch.apply(v);
      for (let i = 0; i < j; i++) setSym(gram, steps, i, j, dot64(kept[i], u));
      gram[j * steps + j] = dot64(u, u);
      kept.push(u);
    },
    get count() {
      return kept.length;
    },
    cosine: () => normalise(gram, steps, kept.length),
  };
}

/** Cosine from a Gram matrix; a zero vector has similarity 0 to others and 1 to itself. */
function normalise(gram: Float64Array, stride: number, m: number): Float64Array {
  const out = new Float64Array(m * m);
  const norm = Array.from({ length: m }, (_, i) => Math.sqrt(gram[i * stride + i]));
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      const d = norm[i] * norm[j];
      out[i * m + j] = i === j ? 1 : d > 0 ? Math.max(-1, Math.min(1, gram[i * stride + j] / d)) : 0;
    }
  }
  return out;
}

function setSym(g: Float64Array, stride: number, i: number, j: number, v: number): void {
  g[i * stride + j] = v;
  g[j * stride + i] = v;
}

/** Dot product of float32 vectors, accumulated in float64 (four lanes for speed). */
export function dot32(a: Float32Array, b: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n = a.length, m = n - (n % 4);
  for (let i = 0; i < m; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (let i = m; i < n; i++) s0 += a[i] * b[i];
  return s0 + s1 + s2 + s3;
}

function dot64(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
