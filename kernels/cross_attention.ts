/**
 * Cross-attention of image tokens to caption tokens (PixArt: ungated, after self-attention).
 * The caption's keys and values do not change during a run, so they are computed once per
 * prompt (`textKeysValues`, in the text graph) and fed to every step; a step computes only
 * the queries, the attention and the output projection. The core is the one of attention.ts
 * (portable or fused), which takes keys of another length than the queries.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { type AttentionKind, fusedAttention, portableAttention } from "./attention.ts";
import { linear, type LinearWeights } from "./linear.ts";

export interface CrossAttentionWeights {
  q: LinearWeights;
  out: LinearWeights;
}

/** Caption tokens y [n, Tk, D] -> keys and values [n, Tk, D]. */
export function textKeysValues(g: GraphBuilder, y: Value, k: LinearWeights, v: LinearWeights): [Value, Value] {
  return [linear(g, y, k), linear(g, y, v)];
}

/** Attention core only: queries [n, T, D] against keys/values [n, Tk, D]. */
export function attendText(g: GraphBuilder, q: Value, k: Value, v: Value, heads: number, kind: AttentionKind): Value {
  return kind === "fused" ? fusedAttention(g, q, k, v, heads) : portableAttention(g, q, k, v, heads);
}

/** x [n, T, D] attends to k/v [n, Tk, D] -> [n, T, D] after the output projection. */
export function crossAttention(
  g: GraphBuilder,
  x: Value,
  k: Value,
  v: Value,
  w: CrossAttentionWeights,
  heads: number,
  kind: AttentionKind,
): Value {
  return linear(g, attendText(g, linear(g, x, w.q), k, v, heads, kind), w.out);
}
