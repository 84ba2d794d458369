/**
 * Multi-head self-attention with separate Q/K/V projections. Two forms of the core:
 * "portable" (MatMul-Softmax-MatMul, any EP) and "fused" (com.microsoft.MultiHeadAttention
 * with unpacked Q/K/V and no mask: the form ONNX Runtime's CUDA EP maps onto flash attention).
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { linear, type LinearWeights } from "./linear.ts";

export type AttentionKind = "portable" | "fused";

export interface AttentionWeights {
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  out: LinearWeights;
}

/** x [n, T, D] -> [n, T, D] (after the output projection). */
export function selfAttention(g: GraphBuilder, x: Value, w: AttentionWeights, heads: number, kind: AttentionKind): Value {
  const q = linear(g, x, w.q), k = linear(g, x, w.k), v = linear(g, x, w.v);
  const core = kind === "fused" ? fusedAttention(g, q, k, v, heads) : portableAttention(g, q, k, v, heads);
  return linear(g, core, w.out);
}

/** softmax(q k^T / sqrt(hd)) v over heads; q [n, Tq, D], k/v [n, Tk, D] -> [n, Tq, D]. */
export function portableAttention(g: GraphBuilder, q: Value, k: Value, v: Value, heads: number): Value {
  const d = q.shape[2] as number, hd = d / heads;
  const split = (t: Value) => g.transpose(g.reshape(t, [0, 0, heads, hd]), [0, 2, 1, 3]);
  // Scaling q (not the scores) keeps the product in range for fp16.
  const qs = g.mul(split(q), g.scalar(1 / Math.sqrt(hd)));
  const kt = g.transpose(g.reshape(k, [0, 0, heads, hd]), [0, 2, 3, 1]);
  const probs = g.softmax(g.matmul(qs, kt), -1);
  const o = g.matmul(probs, split(v));
  return g.reshape(g.transpose(o, [0, 2, 1, 3]), [0, 0, d]);
}

export function fusedAttention(g: GraphBuilder, q: Value, k: Value, v: Value, heads: number): Value {
  return g.node("MultiHeadAttention", [q, k, v], [{ dtype: q.dtype, shape: q.shape }], { num_heads: heads }, "com.microsoft")[0];
}
