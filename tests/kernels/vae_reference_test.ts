/** The plain-loop VAE references (vae_reference.ts) against hand-computed values. */
import { strict as assert } from "node:assert";
import { attentionRef, convRef, groupNormRef, upsampleRef } from "./vae_reference.ts";

// ---- the references against hand-computed values --------------------------------

const near = (a: ArrayLike<number>, b: number[], what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

Deno.test("reference conv: 3x3 of ones with pad 1 sums each neighbourhood", () => {
  const x = Float32Array.from([1, 2, 3, 4]); // [1,1,2,2]
  const { data, shape } = convRef(x, [1, 1, 2, 2], new Float32Array(9).fill(1), [1, 1, 3, 3], Float32Array.of(0.5), 1);
  assert.deepEqual(shape, [1, 1, 2, 2]);
  near(data, [10.5, 10.5, 10.5, 10.5], "conv");
});

Deno.test("reference group norm: two groups normalised separately, then the affine", () => {
  // [1, 2, 1, 2]: group 0 = channel 0 = [1, 3], group 1 = channel 1 = [10, 10].
  const out = groupNormRef(Float32Array.from([1, 3, 10, 10]), [1, 2, 1, 2], 2, Float32Array.of(2, 1), Float32Array.of(0, 5));
  near(out, [-2, 2, 5, 5], "group norm");
});

Deno.test("reference upsample: each pixel fills a 2x2 square", () => {
  near(upsampleRef(Float32Array.from([1, 2, 3, 4]), [1, 1, 2, 2]), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], "upsample");
});

Deno.test("reference attention: identical keys give the mean of the values", () => {
  // c = 1, one group: the normed tokens of [0, 2] are [-1, 1]; wk = 0 makes all scores equal.
  const one = Float32Array.of(1), zero = Float32Array.of(0);
  const out = attentionRef(Float32Array.from([0, 2]), [1, 1, 1, 2], 1, {
    gamma: one,
    beta: zero,
    wq: one,
    bq: zero,
    wk: zero,
    bk: zero,
    wv: Float32Array.of(3),
    bv: Float32Array.of(1),
    wo: Float32Array.of(2),
    bo: Float32Array.of(0.5),
  });
  // v = [-2, 4], mean 1; out = x + 2*1 + 0.5.
  const eps = 1e-6, s = 1 / Math.sqrt(1 + eps);
  const v = [3 * -s + 1, 3 * s + 1], mean = (v[0] + v[1]) / 2;
  near(out, [0 + 2 * mean + 0.5, 2 + 2 * mean + 0.5], "attention");
});
