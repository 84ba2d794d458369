/** Known values from tests/random/reference_rng.py (independent Python implementation). */
import assert from "node:assert/strict";
import { batchNormals, normal, sampleRng, sampleRngs, sampleSeed } from "../../lib/random/mod.ts";
import { ForaError } from "../../lib/errors.ts";

Deno.test("sampleSeed is SplitMix64: seed 0 gives splitmix64.c's first outputs", () => {
  assert.deepEqual([0, 1, 2].map((i) => sampleSeed(0, i)), [
    0xe220a8397b1dcdafn,
    0x6e789e6aa1b965f4n,
    0x06c45d188009454fn,
  ]);
});

Deno.test("sampleSeed of run seed 1234 matches the reference", () => {
  assert.deepEqual([0, 1, 2].map((i) => sampleSeed(1234, i)), [
    0xbb0cf61b2f181cdbn,
    0x97c7a1364df06524n,
    0x33befae49bc025dan,
  ]);
  assert.equal(sampleSeed(1234n, 2), sampleSeed(1234, 2));
});

Deno.test("sample 1 of run 1234 draws the reference normals", () => {
  assert.deepEqual(Array.from(normal(sampleRng(1234, 1), 4)), [
    -0.6096223592758179,
    1.3744770288467407,
    -0.12792599201202393,
    0.3484838902950287,
  ]);
});

Deno.test("different sample indices give different streams", () => {
  const streams = [0, 1, 2, 3].map((i) => normal(sampleRng(77, i), 256));
  for (let i = 0; i < streams.length; i++) {
    for (let j = i + 1; j < streams.length; j++) {
      const same = streams[i].filter((v, k) => v === streams[j][k]).length;
      assert.equal(same, 0, `samples ${i} and ${j} share ${same} values`);
    }
  }
});

Deno.test("a sample's noise does not depend on the batch it is drawn in", () => {
  const whole = batchNormals(sampleRngs(9, 4), 16);
  const tail = batchNormals(sampleRngs(9, 2, 2), 16);
  assert.deepEqual(whole.subarray(32), tail);
  assert.deepEqual(whole.subarray(16, 32), normal(sampleRng(9, 1), 16));
});

Deno.test("bad seeds and indices are usage errors", () => {
  assert.throws(() => sampleSeed(1.5, 0), ForaError);
  assert.throws(() => sampleSeed(1, -1), ForaError);
  assert.throws(() => sampleSeed(Number.MAX_SAFE_INTEGER + 2, 0), ForaError);
});
