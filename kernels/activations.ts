/** Activation functions as graph fragments. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

export function silu(g: GraphBuilder, x: Value): Value {
  return g.mul(x, g.unary("Sigmoid", x));
}

/**
 * GELU with the tanh approximation (DiT's MLP): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * Written out in opset-17 ops; ONNX Runtime fuses the pattern into its FastGelu kernel.
 */
export function geluTanh(g: GraphBuilder, x: Value): Value {
  const x3 = g.mul(g.mul(x, x), x);
  const inner = g.mul(g.add(x, g.mul(x3, g.scalar(0.044715))), g.scalar(Math.sqrt(2 / Math.PI)));
  const t = g.add(g.unary("Tanh", inner), g.scalar(1));
  return g.mul(g.mul(x, t), g.scalar(0.5));
}
