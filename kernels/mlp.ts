/** The transformer MLP: Linear (D -> 4D), GELU (tanh approximation), Linear (4D -> D). */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { geluTanh } from "./activations.ts";
import { linear, type LinearWeights } from "./linear.ts";

export interface MlpWeights {
  fc1: LinearWeights;
  fc2: LinearWeights;
}

export function mlp(g: GraphBuilder, x: Value, w: MlpWeights): Value {
  return linear(g, geluTanh(g, linear(g, x, w.fc1)), w.fc2);
}
