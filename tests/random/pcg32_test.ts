/**
 * Known values come from tests/random/reference_rng.py, an independent Python implementation of
 * the documented algorithm (Python integers, glibc libm); the first six 32-bit outputs for seed
 * 42, stream 54 are also the published output of the PCG reference's pcg32-demo.
 */
import assert from "node:assert/strict";
import { createRng, nextUint32, normal, normal64, uniform53 } from "../../lib/random/mod.ts";

Deno.test("pcg32 seed 42 stream 54 reproduces pcg32-demo's first outputs", () => {
  const rng = createRng(42, 54);
  const got = Array.from({ length: 6 }, () => nextUint32(rng));
  assert.deepEqual(got, [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e]);
  assert.deepEqual(got, [2707161783, 2068313097, 3122475824, 2211639955, 3215226955, 3421331566]);
});

Deno.test("pcg32 takes full 64-bit seeds as bigint", () => {
  const rng = createRng(0xdeadbeefcafef00dn);
  assert.deepEqual(Array.from({ length: 4 }, () => nextUint32(rng)), [4222278654, 804704130, 960148264, 3255327835]);
});

Deno.test("a number seed and the same bigint seed give the same stream", () => {
  const a = createRng(123456789), b = createRng(123456789n);
  for (let i = 0; i < 100; i++) assert.equal(nextUint32(a), nextUint32(b));
});

Deno.test("negative seeds wrap modulo 2^64", () => {
  const a = createRng(-1), b = createRng(0xffffffffffffffffn);
  for (let i = 0; i < 10; i++) assert.equal(nextUint32(a), nextUint32(b));
});

Deno.test("uniform53 matches the reference doubles exactly", () => {
  const rng = createRng(2024);
  assert.deepEqual([uniform53(rng), uniform53(rng), uniform53(rng)], [
    0.6818192926541464,
    0.8600488835235998,
    0.6790064236912287,
  ]);
});

Deno.test("Box-Muller normals match the reference (float64 to 1 ulp, float32 exactly)", () => {
  const want64 = [
    1.1605774890307035,
    0.8408599077866266,
    0.6339253195148352,
    -1.4724151478823757,
    1.1421643261194103,
    0.5402314358419633,
  ];
  const want32 = [
    1.1605775356292725,
    0.8408598899841309,
    0.6339253187179565,
    -1.4724150896072388,
    1.1421643495559692,
    0.5402314066886902,
  ];
  const a = createRng(7);
  want64.forEach((w) => {
    const z = normal64(a);
    assert.ok(Math.abs(z - w) <= 4e-16 * Math.abs(w), `${z} vs ${w}`);
  });
  assert.deepEqual(Array.from(normal(createRng(7), 6)), want32);
});

Deno.test("normals do not depend on how the draws are chunked", () => {
  const whole = normal(createRng(99), 10);
  const rng = createRng(99);
  const parts = [...normal(rng, 3), ...normal(rng, 1), ...normal(rng, 6)];
  assert.deepEqual(parts, Array.from(whole));
});

Deno.test("the same seed gives the same numbers bit for bit; another seed does not", () => {
  const a = normal(createRng(5), 1000), b = normal(createRng(5), 1000), c = normal(createRng(6), 1000);
  assert.deepEqual(a, b);
  assert.ok(a.some((v, i) => v !== c[i]));
});

Deno.test("normals have mean ~0 and variance ~1 over 1e5 draws", () => {
  const n = 100_000;
  const z = normal(createRng(31337), n);
  let s = 0, s2 = 0, s4 = 0;
  for (const v of z) {
    s += v;
    s2 += v * v;
    s4 += v ** 4;
  }
  const mean = s / n, variance = s2 / n - mean * mean, kurtosis = s4 / n;
  // standard errors: mean 1/sqrt(n) = 0.0032, variance sqrt(2/n) = 0.0045, 4th moment sqrt(96/n) = 0.031
  assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
  assert.ok(Math.abs(kurtosis - 3) < 0.15, `E[z^4] ${kurtosis}`);
});

Deno.test("uniform53 stays in [0, 1) and fills the interval evenly", () => {
  const rng = createRng(1);
  const bins = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const u = uniform53(rng);
    assert.ok(u >= 0 && u < 1);
    bins[Math.floor(u * 10)]++;
  }
  for (const b of bins) assert.ok(Math.abs(b - 10_000) < 500, `bin ${b}`);
});

Deno.test("the 32-bit-limb arithmetic agrees with a BigInt PCG32 over long runs and odd seeds", () => {
  const M = (1n << 64n) - 1n;
  for (const [seed, stream] of [[0n, 0n], [M, M >> 1n], [0x8000000000000000n, 12345n], [987654321n, 54n]]) {
    const inc = ((stream << 1n) | 1n) & M;
    let state = 0n;
    const step = () => (state = (state * 6364136223846793005n + inc) & M);
    step();
    state = (state + seed) & M;
    step();
    const rng = createRng(seed, stream);
    for (let i = 0; i < 20_000; i++) {
      const old = state;
      step();
      const xs = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn);
      const rot = Number(old >> 59n);
      const want = ((xs >>> rot) | (xs << ((32 - rot) & 31))) >>> 0;
      const got = nextUint32(rng);
      if (got !== want) assert.fail(`seed ${seed} output ${i}: ${got} vs ${want}`);
    }
  }
});
