/**
 * Cosine similarity matrices (lib/similarity/gram.ts): exact ones, and the CountSketch
 * with its stated error bound, standard error <= sqrt(3) (1 - c^2) / sqrt(k).
 */
import assert from "node:assert/strict";
import { countSketch, exactTrack, type GramTrack, sketchStandardError, sketchTrack } from "../../lib/similarity/gram.ts";
import { planMemory } from "../../lib/similarity/run.ts";
import { createRng, normal, uniform53 } from "../../lib/random/pcg32.ts";

function matrixOf(track: GramTrack, vectors: Float32Array[]): Float64Array {
  for (const v of vectors) track.add(v);
  return track.cosine();
}

Deno.test("identical features have similarity 1 and orthogonal ones 0, exactly and in the sketch", () => {
  const n = 1000, rng = createRng(7);
  const x = normal(rng, n);
  const y = normal(rng, n);
  // Make y orthogonal to x (Gram-Schmidt in float64, then rounded).
  let xy = 0, xx = 0;
  for (let i = 0; i < n; i++) {
    xy += x[i] * y[i];
    xx += x[i] * x[i];
  }
  const yo = Float32Array.from(y, (v, i) => v - (xy / xx) * x[i]);
  const scaled = Float32Array.from(x, (v) => 3 * v);
  const exact = matrixOf(exactTrack(4, n), [x, Float32Array.from(x), yo, scaled]);
  assert.ok(Math.abs(exact[0 * 4 + 1] - 1) < 1e-12, "identical: 1");
  assert.ok(Math.abs(exact[0 * 4 + 3] - 1) < 1e-12, "scaled copy: 1");
  assert.ok(Math.abs(exact[0 * 4 + 2]) < 1e-6, `orthogonal: 0 (${exact[2]})`);
  for (let i = 0; i < 4; i++) assert.equal(exact[i * 4 + i], 1);
  const k = 256;
  const sketched = matrixOf(sketchTrack(4, countSketch(n, k, 1)), [x, Float32Array.from(x), yo, scaled]);
  assert.ok(Math.abs(sketched[1] - 1) < 1e-12, "identical vectors have identical sketches");
  assert.ok(Math.abs(sketched[3] - 1) < 1e-12, "the sketch is linear");
  assert.ok(Math.abs(sketched[2]) <= 4 * sketchStandardError(0, k), `orthogonal: ${sketched[2]} within 4 standard errors`);
  // The matrix is symmetric.
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.equal(exact[i * 4 + j], exact[j * 4 + i]);
});

Deno.test("a zero feature vector has similarity 0 to the others and 1 to itself", () => {
  const m = matrixOf(exactTrack(2, 3), [new Float32Array([1, 2, 3]), new Float32Array(3)]);
  assert.deepEqual([...m], [1, 0, 0, 1]);
});

/**
 * S vectors of size n along a random walk (like features over denoising steps): similarities
 * cover the whole range from about 0 to nearly 1. `spiky`: a few coordinates carry most of the
 * energy (like the massive activations of transformer features), the hard case for a sketch.
 */
function walk(S: number, n: number, seed: number, spiky: boolean): Float32Array[] {
  const rng = createRng(seed);
  const scale = Float32Array.from({ length: n }, (_, i) => (spiky && i % 97 === 0 ? 30 : 1));
  let x = normal(rng, n);
  const out: Float32Array[] = [];
  for (let s = 0; s < S; s++) {
    const step = 0.05 + 0.6 * uniform53(rng);
    const d = normal(rng, n);
    x = Float32Array.from(x, (v, i) => v + step * d[i]);
    out.push(Float32Array.from(x, (v, i) => v * scale[i]));
  }
  return out;
}

for (const spiky of [false, true]) {
  Deno.test(`the sketch's error stays within its bound on random ${spiky ? "spiky " : ""}data`, () => {
    const S = 40, n = 20000, k = 512;
    let sumSq = 0, count = 0, worst = 0;
    for (const seed of [1, 2, 3]) {
      const vs = walk(S, n, seed, spiky);
      const exact = matrixOf(exactTrack(S, n), vs);
      const sketched = matrixOf(sketchTrack(S, countSketch(n, k, 100 + seed)), vs);
      for (let i = 0; i < S; i++) {
        for (let j = i + 1; j < S; j++) {
          const c = exact[i * S + j], err = sketched[i * S + j] - c;
          const se = sketchStandardError(c, k);
          // Errors in units of the stated bound on the standard error.
          const z = err / se;
          sumSq += z * z;
          count++;
          worst = Math.max(worst, Math.abs(z));
        }
      }
    }
    const rms = Math.sqrt(sumSq / count);
    // The bound is on the standard deviation: the RMS error is at most 1 bound (it is about
    // 1/sqrt(3) of it on spread-out data), and no error is far in the tails.
    assert.ok(rms <= 1, `RMS error ${rms.toFixed(3)} bounds over ${count} pairs`);
    assert.ok(rms >= 0.2, `the test data exercises the sketch (RMS ${rms.toFixed(3)})`);
    assert.ok(worst <= 5, `worst error ${worst.toFixed(2)} bounds`);
  });
}

Deno.test("the memory plan keeps features exactly when they fit, sketches them otherwise, and refuses when neither fits", () => {
  const base = { steps: 250, featureSize: 20480, depth: 8, tracks: 16, sketchDim: 1024 };
  const exactBytes = 250 * 20480 * 4 * 16, stepBytes = 4 * 8 * 20480 * 4;
  const exact = planMemory({ ...base, maxMemory: exactBytes + stepBytes });
  assert.equal(exact.mode, "exact");
  assert.equal(exact.storeBytes, exactBytes);
  const sketch = planMemory({ ...base, maxMemory: exactBytes });
  assert.equal(sketch.mode, "sketch");
  assert.equal(sketch.storeBytes, 16 * 250 * 1024 * 8 + 20480 * 4);
  assert.throws(() => planMemory({ ...base, maxMemory: 1 << 20 }), /too small even for the 1024-dimension sketch/);
  assert.throws(() => planMemory({ ...base, sketchDim: 20480, maxMemory: exactBytes }), /not below the feature size/);
});
