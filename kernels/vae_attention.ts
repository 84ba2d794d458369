/**
 * The VAE mid-block attention: one head over the H*W positions of [N, C, H, W].
 * group_norm, then tokens [N, HW, C], q/k/v linears, softmax(q k^T / sqrt(C)) v, output
 * linear, back to [N, C, H, W], plus the input.
 *
 * Weight names: current diffusers `to_q`, `to_k`, `to_v`, `to_out.0`; checkpoints saved
 * before diffusers 0.14 use `query`, `key`, `value`, `proj_attn`. Both are accepted, and
 * so are projection weights kept in 1x1-conv form [C, C, 1, 1].
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { formatShape, shapeError } from "../lib/onnx/shapes.ts";
import { ForaError } from "../lib/errors.ts";
import type { WeightSource } from "../lib/weights/source.ts";
import { linear, type LinearWeights } from "./linear.ts";
import { groupNorm, type GroupNormOptions, type GroupNormWeights, loadGroupNorm, reshapeLike } from "./groupnorm.ts";

export interface VaeAttentionWeights {
  groupNorm: GroupNormWeights;
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  out: LinearWeights;
}

export function vaeAttention(g: GraphBuilder, x: Value, p: VaeAttentionWeights, norm: GroupNormOptions): Value {
  const where = g.scoped("attention");
  const [, c, h, w] = x.shape;
  if (x.shape.length !== 4 || typeof c !== "number") {
    throw shapeError(where, `input must be [N, C, H, W] with static C, got ${formatShape(x.shape)}`);
  }
  const hw = typeof h === "number" && typeof w === "number" ? h * w : -1;
  const normed = g.scope("group_norm", () => groupNorm(g, x, p.groupNorm, norm));
  const tokens = g.transpose(g.reshape(normed, [0, c, hw]), [0, 2, 1]); // [N, HW, C]
  const q = g.scope("to_q", () => linear(g, tokens, p.q));
  const k = g.scope("to_k", () => linear(g, tokens, p.k));
  const v = g.scope("to_v", () => linear(g, tokens, p.v));
  const attn = g.scope("attn", () => {
    // Scaling the queries (not the [HW, HW] scores) keeps float16 products small; ORT
    // fuses the scalar Mul and the transpose into one FusedMatMul (alpha, transB).
    const scaled = g.mul(q, g.scalar(1 / Math.sqrt(c)));
    const scores = g.matmul(scaled, g.transpose(k, [0, 2, 1])); // [N, HW, HW]
    return g.matmul(g.softmax(scores, -1), v); // [N, HW, C]
  });
  const out = g.scope("to_out.0", () => linear(g, attn, p.out));
  return g.add(x, reshapeLike(g, g.transpose(out, [0, 2, 1]), x));
}

const NAMINGS = [
  { q: "to_q", k: "to_k", v: "to_v", out: "to_out.0" },
  { q: "query", k: "key", v: "value", out: "proj_attn" },
] as const;

/** Weights of the attention at `prefix` (e.g. "decoder.mid_block.attentions.0"), either naming. */
export function loadVaeAttention(
  g: GraphBuilder,
  src: WeightSource,
  prefix: string,
  channels: number,
): VaeAttentionWeights {
  const naming = NAMINGS.find((n) => src.has(`${prefix}.${n.q}.weight`));
  if (!naming) {
    throw new ForaError(
      "weights",
      `${src.origin}: no attention weights at ${prefix} (looked for ${prefix}.to_q.weight and the older ${prefix}.query.weight)`,
    );
  }
  const proj = (name: string): LinearWeights => {
    const key = `${prefix}.${name}.weight`;
    const shape = src.get(key).shape;
    const convForm = shape.length === 4 && shape[2] === 1 && shape[3] === 1;
    const t = src.get(key, convForm ? [channels, channels, 1, 1] : [channels, channels]);
    const weight = convForm ? g.reshape(g.weight(t), [channels, channels]) : g.weight(t);
    const biasKey = `${prefix}.${name}.bias`;
    return { weight, bias: src.has(biasKey) ? g.weight(src.get(biasKey, [channels])) : null };
  };
  return {
    groupNorm: loadGroupNorm(g, src, `${prefix}.group_norm`, channels),
    q: proj(naming.q),
    k: proj(naming.k),
    v: proj(naming.v),
    out: proj(naming.out),
  };
}
