/**
 * The int8 weight quantizer (lib/weights/quantize.ts) against a plain element-by-element
 * reference on random data: per output channel, symmetric, scale = max|w| / 127,
 * q = round(w / scale) with ties to even, clamped to [-127, 127], stored transposed [in, out];
 * and the file the convert writes reads back to the same values.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { quantizePerChannel, roundHalfEven, writeQuantizedLinears } from "../../lib/weights/quantize.ts";
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from "../../lib/weights/safetensors.ts";
import { createRng, normal, uniform53 } from "../../lib/random/mod.ts";
import { withTempDir } from "./helpers.ts";

/** Ties to even written the long way: floor, then look at the fraction. */
function referenceRound(x: number): number {
  const f = Math.floor(x), frac = x - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** q[o][i] and scale[o] of an [out, in] weight, one element at a time. */
function reference(w: Float32Array, out: number, inp: number): { q: number[][]; scale: number[] } {
  const q: number[][] = [], scale: number[] = [];
  for (let o = 0; o < out; o++) {
    let max = 0;
    for (let i = 0; i < inp; i++) max = Math.max(max, Math.abs(w[o * inp + i]));
    const s = Math.fround(max / 127);
    scale.push(s);
    q.push(Array.from({ length: inp }, (_, i) => (s === 0 ? 0 : Math.min(127, Math.max(-127, referenceRound(w[o * inp + i] / s))))));
  }
  return { q, scale };
}

function randomWeights(seed: number, n: number): Float32Array {
  const rng = createRng(seed);
  // Normal values with the odd outlier ten times larger, as trained weights have.
  return normal(rng, n).map((v) => (uniform53(rng) < 0.02 ? 10 * v : v));
}

Deno.test("roundHalfEven rounds ties to the even neighbour and everything else to the nearest", () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [-0.5, 0], [-1.5, -2], [-2.5, -2], [126.5, 126], [2.4999, 2], [
    2.5001,
    3,
  ]];
  // Compared with ===, so -0 and 0 count as equal: both store as int8 0.
  for (const [x, want] of cases) assert.ok(roundHalfEven(x) === want, `round(${x}) = ${roundHalfEven(x)}, want ${want}`);
  const rng = createRng(5);
  for (let k = 0; k < 10_000; k++) {
    const x = (uniform53(rng) - 0.5) * 600;
    assert.ok(roundHalfEven(x) === referenceRound(x), `round(${x})`);
  }
});

Deno.test("quantizePerChannel equals the element-by-element reference on random weights, transposed to [in, out]", () => {
  for (const [out, inp, seed] of [[48, 64, 1], [7, 129, 2], [256, 32, 3]]) {
    const w = randomWeights(seed, out * inp);
    // A row of zeros and a row whose values sit exactly on ties.
    w.fill(0, 0, inp);
    for (let i = 0; i < inp; i++) w[inp + i] = (i % 2 === 0 ? 1 : -1) * (i === 0 ? 127 : (i % 100) + 0.5);
    const got = quantizePerChannel(w, out, inp);
    const want = reference(w, out, inp);
    assert.deepEqual(Array.from(got.scales), want.scale);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inp; i++) assert.equal(got.values[i * out + o], want.q[o][i], `q[${o}][${i}] (stored at [${i}][${o}])`);
    }
    assert.equal(got.scales[0], 0, "an all-zero row has scale 0");
    assert.equal(got.scales[1], 1, "row 1's max |w| is 127");
    assert.deepEqual([1, 2, 3].map((i) => got.values[i * out + 1]), [-2, 2, -4], "-1.5, 2.5, -3.5 round to even");
    for (let o = 1; o < out; o++) {
      const col = Array.from({ length: inp }, (_, i) => got.values[i * out + o]);
      assert.equal(Math.max(...col.map(Math.abs)), 127, `row ${o}: its largest |w| maps to 127`);
      for (let i = 0; i < inp; i++) {
        const err = Math.abs(col[i] * got.scales[o] - w[o * inp + i]);
        assert.ok(err <= got.scales[o] / 2 * (1 + 1e-6), `dequantization error of [${o}][${i}]: ${err} > scale / 2`);
      }
    }
  }
});

Deno.test("writeQuantizedLinears writes I8 [in, out] weights and F32 scales that read back as quantized, from F32 and F16 sources", async () => {
  await withTempDir(async (dir) => {
    const w = randomWeights(9, 12 * 20);
    const half = new Float16Array(w);
    await writeSafetensors(join(dir, "src.safetensors"), {
      a: { dtype: "F32", shape: [12, 20], data: w },
      b: { dtype: "F16", shape: [12, 20], data: new Uint16Array(half.buffer) },
    });
    const src = await readSafetensorsHeader(join(dir, "src.safetensors"));
    const ext = (name: string) => {
      const r = src.tensors.get(name)!;
      return {
        name,
        location: "src.safetensors",
        offset: r.offset,
        length: r.byteLength,
        dtype: r.dtype === "F32" ? "float32" as const : "float16" as const,
        shape: r.shape,
      };
    };
    const out = await writeQuantizedLinears(dir, "q/int8.safetensors", [ext("a"), ext("b")]);
    const header = await readSafetensorsHeader(join(dir, "q", "int8.safetensors"));
    for (const [name, source] of [["a", w], ["b", Float32Array.from(half)]] as const) {
      const q = out.get(name)!;
      assert.equal(q.weight.location, "q/int8.safetensors");
      assert.deepEqual([q.weight.dtype, q.weight.shape, q.scale.dtype, q.scale.shape], ["int8", [20, 12], "float32", [12]]);
      const ref = header.tensors.get(q.weight.name)!;
      assert.deepEqual([ref.dtype, ref.offset, ref.byteLength], ["I8", q.weight.offset, 240]);
      const want = quantizePerChannel(source, 12, 20);
      assert.deepEqual(await readTensorF32(ref), Float32Array.from(want.values));
      assert.deepEqual(await readTensorF32(header.tensors.get(q.scale.name)!), want.scales);
    }
  });
});
