/** Each DiT kernel on its own, against the reference goldens or a direct loop. */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { GraphBuilder, type Value } from "../../lib/onnx/builder.ts";
import { f32, type HostTensor, i64 } from "../../lib/runtime/session.ts";
import { timestepSinusoid } from "../../kernels/timestep_embedding.ts";
import { sinCosPositionEmbedding2d } from "../../kernels/position_embedding.ts";
import { unpatchify } from "../../kernels/patch_embedding.ts";
import { fusedAttention, portableAttention } from "../../kernels/attention.ts";
import { labelEmbedding, nullLabels } from "../../kernels/label_embedding.ts";
import { layerNormModulate } from "../../kernels/modulation.ts";
import { geluTanh } from "../../kernels/activations.ts";
import { FIXTURES, readGolden, relError, sessionFor } from "../support.ts";

/** Builds a one-output graph from `body`, runs it once on `feeds`. */
async function runKernel(
  inputs: Record<string, { dtype: "float32" | "int64"; shape: (number | string)[] }>,
  body: (g: GraphBuilder, x: Record<string, Value>) => Value,
  feeds: Record<string, HostTensor>,
  computeType: "float32" | "float16" = "float32",
): Promise<Float32Array> {
  const g = new GraphBuilder("kernel", computeType);
  const vals: Record<string, Value> = {};
  for (const [name, spec] of Object.entries(inputs)) vals[name] = g.input(name, spec.dtype, spec.shape, { keepFloat32: name === "t" });
  g.output(body(g, vals), "y");
  const dir = await Deno.makeTempDir();
  try {
    const s = await sessionFor(dir, "k.onnx", g.data());
    const out = await s.run(feeds);
    await s.release();
    return out.y.data as Float32Array;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

for (const naming of ["original", "diffusers"] as const) {
  Deno.test(`timestep sinusoid matches the ${naming} reference at t = 0, 1, 499.5, 999`, async () => {
    const golden = await readGolden(join(FIXTURES, "dit-tiny", `golden-${naming}.safetensors`));
    const divisor = naming === "original" ? 128 : 127;
    const y = await runKernel({ t: { dtype: "float32", shape: [4] } }, (g, x) => timestepSinusoid(g, x.t, 256, divisor), {
      t: f32([4], [0, 1, 499.5, 999]),
    });
    // float32 phases of t*freq near t=999 carry ~6e-5 absolute error against float64.
    assert.ok(relError(y, golden.get("kern.t_sinusoid")!.data) <= 1e-4);
  });
}

Deno.test("2D sin-cos position embedding matches the reference (column half, then row half)", async () => {
  const golden = await readGolden(join(FIXTURES, "dit-tiny", "golden-original.safetensors"));
  assert.ok(relError(sinCosPositionEmbedding2d(64, 4), golden.get("kern.pos_embed")!.data) <= 1e-6);
});

Deno.test("unpatchify orders each token's values as (p, q, c)", async () => {
  const [n, grid, p, c] = [1, 2, 2, 3];
  const data = Float32Array.from({ length: n * grid * grid * p * p * c }, (_, i) => i);
  const y = await runKernel(
    { x: { dtype: "float32", shape: [n, grid * grid, p * p * c] } },
    (g, x) => unpatchify(g, x.x, grid, p, c),
    { x: f32([n, grid * grid, p * p * c], data) },
  );
  const H = grid * p;
  for (let ch = 0; ch < c; ch++) {
    for (let r = 0; r < H; r++) {
      for (let col = 0; col < H; col++) {
        const token = Math.floor(r / p) * grid + Math.floor(col / p);
        const expected = token * p * p * c + (r % p) * p * c + (col % p) * c + ch;
        assert.equal(y[ch * H * H + r * H + col], expected);
      }
    }
  }
});

Deno.test("portable and fused (com.microsoft.MultiHeadAttention) attention agree with a direct loop", async () => {
  const [n, T, D, heads] = [2, 5, 8, 2];
  const q = seeded(n * T * D, 1), k = seeded(n * T * D, 2), v = seeded(n * T * D, 3);
  const hd = D / heads;
  const expected = new Float32Array(n * T * D);
  for (let b = 0; b < n; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < T; i++) {
        const scores = Array.from({ length: T }, (_, j) => {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[(b * T + i) * D + h * hd + d] * k[(b * T + j) * D + h * hd + d];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...scores), e = scores.map((s) => Math.exp(s - m)), z = e.reduce((a, b) => a + b);
        for (let d = 0; d < hd; d++) {
          expected[(b * T + i) * D + h * hd + d] = e.reduce((acc, w, j) => acc + (w / z) * v[(b * T + j) * D + h * hd + d], 0);
        }
      }
    }
  }
  const spec = { dtype: "float32" as const, shape: [n, T, D] };
  const feeds = { q: f32([n, T, D], q), k: f32([n, T, D], k), v: f32([n, T, D], v) };
  for (const core of [portableAttention, fusedAttention]) {
    const y = await runKernel({ q: spec, k: spec, v: spec }, (g, x) => core(g, x.q, x.k, x.v, heads), feeds);
    assert.ok(relError(y, expected) <= 1e-5, core.name);
  }
});

Deno.test("label embedding looks up rows, and null labels point at the last row", async () => {
  const table = seeded(4 * 3, 7);
  const y = await runKernel(
    { labels: { dtype: "int64", shape: [2] } },
    (g, x) => labelEmbedding(g, g.concat([x.labels, nullLabels(g, x.labels, 3)], 0), g.constant(table, [4, 3])),
    { labels: i64([2], [2, 0]) },
  );
  assert.deepEqual(Array.from(y), [...table.slice(6, 9), ...table.slice(0, 3), ...table.slice(9, 12), ...table.slice(9, 12)]);
});

Deno.test("LayerNorm + modulate computes LN(x) * (1 + scale) + shift per sample", async () => {
  const [n, T, D] = [2, 3, 4];
  const x = seeded(n * T * D, 11), sh = seeded(n * D, 12), sc = seeded(n * D, 13);
  const y = await runKernel(
    { x: { dtype: "float32", shape: [n, T, D] }, sh: { dtype: "float32", shape: [n, D] }, sc: { dtype: "float32", shape: [n, D] } },
    (g, v) => layerNormModulate(g, v.x, v.sh, v.sc, 1e-6),
    { x: f32([n, T, D], x), sh: f32([n, D], sh), sc: f32([n, D], sc) },
  );
  for (let b = 0; b < n; b++) {
    for (let t = 0; t < T; t++) {
      const row = x.slice((b * T + t) * D, (b * T + t + 1) * D);
      const mean = row.reduce((a, c) => a + c) / D;
      const variance = row.reduce((a, c) => a + (c - mean) ** 2, 0) / D;
      row.forEach((val, d) => {
        const expected = ((val - mean) / Math.sqrt(variance + 1e-6)) * (1 + sc[b * D + d]) + sh[b * D + d];
        assert.ok(Math.abs(y[(b * T + t) * D + d] - expected) < 1e-5);
      });
    }
  }
});

Deno.test("GELU (tanh approximation) matches its formula", async () => {
  const x = Float32Array.from({ length: 41 }, (_, i) => (i - 20) / 4);
  const y = await runKernel({ x: { dtype: "float32", shape: [41] } }, (g, v) => geluTanh(g, v.x), { x: f32([41], x) });
  x.forEach((v, i) => {
    const e = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    assert.ok(Math.abs(y[i] - e) < 1e-5);
  });
});
