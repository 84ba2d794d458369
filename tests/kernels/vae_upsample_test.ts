import assert from "node:assert/strict";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { f32 } from "../../lib/runtime/session.ts";
import { upsample, upsampleNearest2x } from "../../kernels/upsample.ts";
import { assertClose, COMPUTE_TYPES, convRef, input, param, rand, runGraph, upsampleRef } from "./vae_reference.ts";

Deno.test("nearest 2x repeats each pixel in a 2x2 square (hand-written expectation)", async () => {
  const g = new GraphBuilder("up", "float32");
  const y = upsampleNearest2x(g, g.input("x", "float32", [1, 1, 2, 3]));
  assert.deepEqual(y.shape, [1, 1, 4, 6]);
  g.output(y, "y");
  const { y: out } = await runGraph(g.data(), { x: f32([1, 1, 2, 3], [1, 2, 3, 4, 5, 6]) });
  assert.deepEqual(out.shape, [1, 1, 4, 6]);
  assert.deepEqual([...out.data as Float32Array], [
    1,
    1,
    2,
    2,
    3,
    3,
    1,
    1,
    2,
    2,
    3,
    3,
    4,
    4,
    5,
    5,
    6,
    6,
    4,
    4,
    5,
    5,
    6,
    6,
  ]);
});

for (const { type, tol } of COMPUTE_TYPES) {
  Deno.test(`nearest 2x on [2, 3, 5, 4] (${type}) matches a direct loop`, async () => {
    const shape = [2, 3, 5, 4];
    const x = input(shape, 4);
    const g = new GraphBuilder("up", type);
    g.output(upsampleNearest2x(g, g.input("x", "float32", shape)), "y");
    const { y: out } = await runGraph(g.data(), { x });
    assert.deepEqual(out.shape, [2, 3, 10, 8]);
    assertClose(out.data as Float32Array, upsampleRef(x.data as Float32Array, shape), type === "float32" ? 0 : tol, "upsample");
  });

  Deno.test(`upsample (nearest 2x then 3x3 conv, ${type}) matches the references`, async () => {
    const shape = [1, 4, 3, 3], ws = [4, 4, 3, 3];
    const x = input(shape, 5);
    const w = rand(144, 6, 0.3), b = rand(4, 7);
    const g = new GraphBuilder("up", type);
    const y = upsample(g, g.input("x", "float32", shape), { weight: param(g, w, ws), bias: param(g, b, [4]) });
    assert.deepEqual(y.shape, [1, 4, 6, 6]);
    g.output(y, "y");
    const { y: out } = await runGraph(g.data(), { x });
    const expected = convRef(upsampleRef(x.data as Float32Array, shape), [1, 4, 6, 6], w, ws, b, 1);
    assertClose(out.data as Float32Array, expected.data, tol, "upsample conv");
  });
}
