import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { ForaError } from "../../lib/errors.ts";
import { loadCheckpoint } from "../../lib/weights/checkpoint.ts";
import { writeSafetensors } from "../../lib/weights/safetensors.ts";
import { weightSource } from "../../lib/weights/source.ts";
import { loadVaeAttention, vaeAttention } from "../../kernels/vae_attention.ts";
import { assertClose, attentionRef, type AttentionRefWeights, COMPUTE_TYPES, input, param, rand, runGraph } from "./vae_reference.ts";

function makeWeights(c: number, seed: number): AttentionRefWeights {
  const r = (n: number, k: number, s = 1) => rand(n, seed * 100 + k, s);
  const s = 1 / Math.sqrt(c);
  return {
    gamma: r(c, 1),
    beta: r(c, 2),
    // Large enough that the softmax is far from uniform.
    wq: r(c * c, 3, 3 * s),
    bq: r(c, 4),
    wk: r(c * c, 5, 3 * s),
    bk: r(c, 6),
    wv: r(c * c, 7, s),
    bv: r(c, 8),
    wo: r(c * c, 9, s),
    bo: r(c, 10),
  };
}

for (const { type, tol } of COMPUTE_TYPES) {
  Deno.test(`vaeAttention on [2, 8, 3, 4] (${type}) matches a naive loop`, async () => {
    const shape = [2, 8, 3, 4], c = 8, groups = 4;
    const p = makeWeights(c, 1);
    const x = input(shape, 21, 2);
    const g = new GraphBuilder("attn", type);
    const lin = (w: Float32Array, b: Float32Array) => ({ weight: param(g, w, [c, c]), bias: param(g, b, [c]) });
    const y = vaeAttention(g, g.input("x", "float32", shape), {
      groupNorm: { weight: param(g, p.gamma, [c]), bias: param(g, p.beta, [c]) },
      q: lin(p.wq, p.bq),
      k: lin(p.wk, p.bk),
      v: lin(p.wv, p.bv),
      out: lin(p.wo, p.bo),
    }, { groups });
    assert.deepEqual(y.shape, shape);
    g.output(y, "y");
    const { y: out } = await runGraph(g.data(), { x });
    assertClose(out.data as Float32Array, attentionRef(x.data as Float32Array, shape, groups, p), tol, "attention");
  });
}

/** Saves the weights under the given names, loads them back through a checkpoint. */
async function loadedAttention(
  naming: { q: string; k: string; v: string; out: string },
  convForm: boolean,
): Promise<void> {
  const shape = [1, 4, 2, 3], c = 4, groups = 2, prefix = "decoder.mid_block.attentions.0";
  const p = makeWeights(c, 2);
  const dir = await Deno.makeTempDir({ prefix: "fora-vae-attn-" });
  try {
    const t = (data: Float32Array, s: number[]) => ({ dtype: "F32" as const, shape: s, data });
    const ws = convForm ? [c, c, 1, 1] : [c, c];
    await writeSafetensors(join(dir, "diffusion_pytorch_model.safetensors"), {
      [`${prefix}.group_norm.weight`]: t(p.gamma, [c]),
      [`${prefix}.group_norm.bias`]: t(p.beta, [c]),
      [`${prefix}.${naming.q}.weight`]: t(p.wq, ws),
      [`${prefix}.${naming.q}.bias`]: t(p.bq, [c]),
      [`${prefix}.${naming.k}.weight`]: t(p.wk, ws),
      [`${prefix}.${naming.k}.bias`]: t(p.bk, [c]),
      [`${prefix}.${naming.v}.weight`]: t(p.wv, ws),
      [`${prefix}.${naming.v}.bias`]: t(p.bv, [c]),
      [`${prefix}.${naming.out}.weight`]: t(p.wo, ws),
      [`${prefix}.${naming.out}.bias`]: t(p.bo, [c]),
    });
    const src = weightSource(await loadCheckpoint(dir), (f) => basename(f));
    const g = new GraphBuilder("attn", "float32");
    const y = vaeAttention(g, g.input("x", "float32", shape), loadVaeAttention(g, src, prefix, c), { groups });
    g.output(y, "y");
    const x = input(shape, 5);
    const { y: out } = await runGraph(g.data(), { x }, dir);
    assertClose(out.data as Float32Array, attentionRef(x.data as Float32Array, shape, groups, p), 1e-5, "loaded attention");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadVaeAttention reads current diffusers names (to_q, to_k, to_v, to_out.0)", async () => {
  await loadedAttention({ q: "to_q", k: "to_k", v: "to_v", out: "to_out.0" }, false);
});

Deno.test("loadVaeAttention reads the older names (query, key, value, proj_attn)", async () => {
  await loadedAttention({ q: "query", k: "key", v: "value", out: "proj_attn" }, false);
});

Deno.test("loadVaeAttention accepts projections kept as 1x1 convs [C, C, 1, 1]", async () => {
  await loadedAttention({ q: "query", k: "key", v: "value", out: "proj_attn" }, true);
});

Deno.test("loadVaeAttention names both spellings when neither is there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fora-vae-attn-" });
  try {
    await writeSafetensors(join(dir, "model.safetensors"), { x: { dtype: "F32", shape: [1], data: Float32Array.of(0) } });
    const src = weightSource(await loadCheckpoint(dir), (f) => basename(f));
    const g = new GraphBuilder("attn", "float32");
    assert.throws(() => loadVaeAttention(g, src, "decoder.mid_block.attentions.0", 4), (e: unknown) => {
      assert.ok(e instanceof ForaError);
      assert.match(e.message, /to_q\.weight/);
      assert.match(e.message, /query\.weight/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
