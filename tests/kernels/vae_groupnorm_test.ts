import assert from "node:assert/strict";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { groupNorm } from "../../kernels/groupnorm.ts";
import { assertClose, COMPUTE_TYPES, groupNormRef, input, param, rand, runGraph } from "./vae_reference.ts";

const cases = [
  { name: "4 groups of 2 channels", shape: [2, 8, 3, 5], groups: 4 },
  { name: "one group", shape: [1, 6, 4, 4], groups: 1 },
  { name: "one channel per group", shape: [1, 4, 3, 3], groups: 4 },
];

for (const { type, tol } of COMPUTE_TYPES) {
  for (const c of cases) {
    for (const float32Stats of [false, true]) {
      const label = `${c.name} (${type}${float32Stats ? ", float32 stats" : ""})`;
      Deno.test(`groupNorm ${label} matches a direct loop`, async () => {
        const ch = c.shape[1];
        // Offset and scaled input: the statistics must be taken per group, not per tensor.
        const x = input(c.shape, 7, 3);
        (x.data as Float32Array).forEach((v, i, a) => (a[i] = v + Math.floor(i / 7) % 5));
        const gamma = rand(ch, 8), beta = rand(ch, 9);
        const g = new GraphBuilder("gn", type);
        const y = groupNorm(g, g.input("x", "float32", c.shape), { weight: param(g, gamma, [ch]), bias: param(g, beta, [ch]) }, {
          groups: c.groups,
          float32Stats,
        });
        assert.deepEqual(y.shape, c.shape);
        g.output(y, "y");
        const { y: out } = await runGraph(g.data(), { x });
        assertClose(out.data as Float32Array, groupNormRef(x.data as Float32Array, c.shape, c.groups, gamma, beta), tol, "group norm");
      });
    }
  }
}

Deno.test("groupNorm uses eps 1e-6 by default and honours another", async () => {
  // A constant group has variance 0: x - mean = 0 either way, so use a tiny-variance group.
  const shape = [1, 2, 1, 2];
  const x = Float32Array.from([0, 1e-3, 0, 1e-3]);
  const one = Float32Array.of(1, 1), zero = Float32Array.of(0, 0);
  for (const eps of [undefined, 1e-2]) {
    const g = new GraphBuilder("gn", "float32");
    const y = groupNorm(g, g.input("x", "float32", shape), { weight: param(g, one, [2]), bias: param(g, zero, [2]) }, { groups: 1, eps });
    g.output(y, "y");
    const { y: out } = await runGraph(g.data(), { x: { dtype: "float32", shape, data: x } });
    assertClose(out.data as Float32Array, groupNormRef(x, shape, 1, one, zero, eps ?? 1e-6), 1e-5, `eps ${eps}`);
  }
});

Deno.test("groupNorm refuses channels that do not split into the groups", () => {
  const g = new GraphBuilder("gn", "float32");
  const x = g.input("x", "float32", [1, 6, 2, 2]);
  const p = { weight: param(g, rand(6, 1), [6]), bias: param(g, rand(6, 2), [6]) };
  assert.throws(() => groupNorm(g, x, p, { groups: 4 }), /6 channels cannot be split into 4 groups/);
});
