/** y = x W^T + b, with W stored as [out, in] as in PyTorch checkpoints, or quantized to int8 (linear_int8.ts). */
import type { ExternalTensor, GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { type Int8LinearWeights, linearInt8 } from "./linear_int8.ts";

export interface FloatLinearWeights {
  weight: Value;
  bias: Value | null;
}

export type LinearWeights = FloatLinearWeights | Int8LinearWeights;

/** A linear layer's tensors as a weights file holds them (DiT, PixArt). */
export interface LinearTensors {
  weight: ExternalTensor;
  bias: ExternalTensor;
}

/** The layer's tensors as graph initializers. */
export function linearOf(g: GraphBuilder, l: LinearTensors): FloatLinearWeights {
  return { weight: g.weight(l.weight), bias: g.weight(l.bias) };
}

export function linear(g: GraphBuilder, x: Value, p: LinearWeights): Value {
  if ("scale" in p) return linearInt8(g, x, p);
  // The transpose of an initializer is folded by ONNX Runtime at load time.
  const y = g.matmul(x, g.transpose(p.weight, [1, 0]));
  return p.bias ? g.add(y, p.bias) : y;
}
