/**
 * adaLN-single (PixArt-alpha): the timestep embedding alone conditions the model. One shared
 * `t_block` (SiLU -> Linear(D, 6D)) maps it to six D-vectors; each block adds its own learned
 * [6, D] table (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp). The final
 * layer adds its [2, D] table (shift, scale) to the timestep embedding itself.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { silu } from "./activations.ts";
import { linear, type LinearWeights } from "./linear.ts";

/** t_emb [n, D] -> t0 [n, 6D]. */
export function tBlock(g: GraphBuilder, tEmb: Value, w: LinearWeights): Value {
  return g.scope("t_block", () => linear(g, silu(g, tEmb), w));
}

/** Block modulation: (table [6, D] + t0 reshaped to [n, 6, D]) split into 6 vectors [n, D]. */
export function tableModulation(g: GraphBuilder, t0: Value, table: Value): Value[] {
  const [k, d] = table.shape as number[];
  return chunks(g, g.add(g.reshape(t0, [-1, k, d]), table));
}

/** Final layer: (table [2, D] + t_emb [n, 1, D]) split into shift and scale, each [n, D]. */
export function finalModulation(g: GraphBuilder, tEmb: Value, table: Value): Value[] {
  return chunks(g, g.add(g.unsqueeze(tEmb, [1]), table));
}

function chunks(g: GraphBuilder, sum: Value): Value[] {
  const [, k, d] = sum.shape as number[];
  return g.split(sum, 1, Array(k).fill(1)).map((v) => g.reshape(v, [-1, d]));
}
