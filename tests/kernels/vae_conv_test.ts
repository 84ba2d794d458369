import assert from "node:assert/strict";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { ForaError } from "../../lib/errors.ts";
import { conv2d } from "../../kernels/conv.ts";
import { assertClose, COMPUTE_TYPES, convRef, input, param, rand, runGraph } from "./vae_reference.ts";

const cases = [
  { name: "3x3 pad 1", x: [2, 3, 5, 4], w: [4, 3, 3, 3], bias: true },
  { name: "1x1 shortcut", x: [1, 6, 3, 3], w: [2, 6, 1, 1], bias: true },
  { name: "3x3 without bias", x: [1, 2, 4, 4], w: [3, 2, 3, 3], bias: false },
];

for (const { type, tol } of COMPUTE_TYPES) {
  for (const c of cases) {
    Deno.test(`conv2d ${c.name} (${type}) matches a direct loop`, async () => {
      const x = input(c.x, 1);
      const w = rand(c.w.reduce((a, b) => a * b, 1), 2, 0.5);
      const b = c.bias ? rand(c.w[0], 3) : null;
      const g = new GraphBuilder("conv", type);
      const y = conv2d(g, g.input("x", "float32", c.x), { weight: param(g, w, c.w), bias: b ? param(g, b, [c.w[0]]) : null });
      const expected = convRef(x.data as Float32Array, c.x, w, c.w, b, (c.w[2] - 1) / 2);
      assert.deepEqual(y.shape, expected.shape);
      g.output(y, "y");
      const { y: out } = await runGraph(g.data(), { x });
      assert.deepEqual(out.shape, expected.shape);
      assertClose(out.data as Float32Array, expected.data, tol, "conv");
    });
  }
}

Deno.test("conv2d refuses an even kernel without explicit padding, and a bias of the wrong size", () => {
  const g = new GraphBuilder("conv", "float32");
  const x = g.input("x", "float32", [1, 2, 4, 4]);
  assert.throws(() => conv2d(g, x, { weight: param(g, rand(16, 1), [2, 2, 2, 2]), bias: null }), ForaError);
  assert.throws(
    () => conv2d(g, x, { weight: param(g, rand(36, 1), [2, 2, 3, 3]), bias: param(g, rand(3, 1), [3]) }),
    /does not match 2 output channels/,
  );
  assert.throws(() => conv2d(g, x, { weight: param(g, rand(27, 1), [1, 3, 3, 3]), bias: null }), /kernel expects 3/);
});
