import assert from "node:assert/strict";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { vaeResnet, type VaeResnetWeights } from "../../kernels/vae_resnet.ts";
import { assertClose, COMPUTE_TYPES, convRef, groupNormRef, input, param, rand, runGraph, siluRef } from "./vae_reference.ts";

interface RefParams {
  g1: Float32Array;
  b1: Float32Array;
  w1: Float32Array;
  c1: Float32Array;
  g2: Float32Array;
  b2: Float32Array;
  w2: Float32Array;
  c2: Float32Array;
  ws: Float32Array | null;
  cs: Float32Array | null;
}

function makeParams(cin: number, cout: number, seed: number): RefParams {
  const r = (n: number, k: number, s = 1) => rand(n, seed * 100 + k, s);
  return {
    g1: r(cin, 1),
    b1: r(cin, 2),
    w1: r(cout * cin * 9, 3, 0.3),
    c1: r(cout, 4),
    g2: r(cout, 5),
    b2: r(cout, 6),
    w2: r(cout * cout * 9, 7, 0.3),
    c2: r(cout, 8),
    ws: cin === cout ? null : r(cout * cin, 9, 0.5),
    cs: cin === cout ? null : r(cout, 10),
  };
}

function resnetRef(x: Float32Array, shape: number[], cout: number, groups: number, p: RefParams): Float32Array {
  const [n, cin, h, w] = shape;
  let t = siluRef(groupNormRef(x, shape, groups, p.g1, p.b1));
  t = convRef(t, shape, p.w1, [cout, cin, 3, 3], p.c1, 1).data;
  t = siluRef(groupNormRef(t, [n, cout, h, w], groups, p.g2, p.b2));
  t = convRef(t, [n, cout, h, w], p.w2, [cout, cout, 3, 3], p.c2, 1).data;
  const s = p.ws ? convRef(x, shape, p.ws, [cout, cin, 1, 1], p.cs, 0).data : x;
  return t.map((v, i) => v + s[i]);
}

const cases = [
  { name: "same channels", shape: [2, 4, 4, 3], cout: 4, groups: 2 },
  { name: "8 -> 4 channels through conv_shortcut", shape: [1, 8, 3, 3], cout: 4, groups: 2 },
];

for (const { type, tol } of COMPUTE_TYPES) {
  for (const c of cases) {
    Deno.test(`vaeResnet ${c.name} (${type}) matches the reference`, async () => {
      const cin = c.shape[1], cout = c.cout;
      const p = makeParams(cin, cout, 3);
      const x = input(c.shape, 11, 2);
      const g = new GraphBuilder("resnet", type);
      const w: VaeResnetWeights = {
        norm1: { weight: param(g, p.g1, [cin]), bias: param(g, p.b1, [cin]) },
        conv1: { weight: param(g, p.w1, [cout, cin, 3, 3]), bias: param(g, p.c1, [cout]) },
        norm2: { weight: param(g, p.g2, [cout]), bias: param(g, p.b2, [cout]) },
        conv2: { weight: param(g, p.w2, [cout, cout, 3, 3]), bias: param(g, p.c2, [cout]) },
        convShortcut: p.ws ? { weight: param(g, p.ws, [cout, cin, 1, 1]), bias: param(g, p.cs!, [cout]) } : null,
      };
      const y = vaeResnet(g, g.input("x", "float32", c.shape), w, { groups: c.groups });
      assert.deepEqual(y.shape, [c.shape[0], cout, c.shape[2], c.shape[3]]);
      g.output(y, "y");
      const { y: out } = await runGraph(g.data(), { x });
      assertClose(out.data as Float32Array, resnetRef(x.data as Float32Array, c.shape, cout, c.groups, p), tol, "resnet");
    });
  }
}

Deno.test("vaeResnet refuses a channel change without conv_shortcut", () => {
  const g = new GraphBuilder("resnet", "float32");
  const p = makeParams(4, 2, 1);
  const w: VaeResnetWeights = {
    norm1: { weight: param(g, p.g1, [4]), bias: param(g, p.b1, [4]) },
    conv1: { weight: param(g, p.w1, [2, 4, 3, 3]), bias: param(g, p.c1, [2]) },
    norm2: { weight: param(g, p.g2, [2]), bias: param(g, p.b2, [2]) },
    conv2: { weight: param(g, p.w2, [2, 2, 3, 3]), bias: param(g, p.c2, [2]) },
    convShortcut: null,
  };
  assert.throws(() => vaeResnet(g, g.input("x", "float32", [1, 4, 2, 2]), w, { groups: 2 }), /no conv_shortcut/);
});
