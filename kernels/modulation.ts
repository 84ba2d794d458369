/** adaLN: conditioning -> shift/scale/gate vectors, and the modulated LayerNorm. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { silu } from "./activations.ts";
import { linear, type LinearWeights } from "./linear.ts";

/** SiLU -> Linear(D, n*D) -> n chunks, each [..., D]. */
export function adaLNModulation(g: GraphBuilder, c: Value, w: LinearWeights, chunks: number): Value[] {
  const y = linear(g, silu(g, c), w);
  const d = (y.shape[y.shape.length - 1] as number) / chunks;
  return g.split(y, -1, Array(chunks).fill(d));
}

/** modulate(x, shift, scale) = x * (1 + scale) + shift, with per-sample vectors broadcast over tokens. */
export function modulate(g: GraphBuilder, x: Value, shift: Value, scale: Value): Value {
  const one = g.scalar(1);
  return g.add(g.mul(x, g.add(g.unsqueeze(scale, [-2]), one)), g.unsqueeze(shift, [-2]));
}

/** LayerNorm without affine parameters, then modulate. */
export function layerNormModulate(g: GraphBuilder, x: Value, shift: Value, scale: Value, eps: number): Value {
  return modulate(g, g.layerNorm(x, eps), shift, scale);
}

/** x + gate * y, the gated residual of adaLN-Zero (gate per sample, broadcast over tokens). */
export function gatedResidual(g: GraphBuilder, x: Value, gate: Value, y: Value): Value {
  return g.add(x, g.mul(g.unsqueeze(gate, [-2]), y));
}
