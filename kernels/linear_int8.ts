/**
 * y = x W^T + b with W quantized to int8 at convert time (per output channel, symmetric;
 * lib/weights/quantize.ts) and x quantized by ONNX Runtime at run time: one
 * com.microsoft DynamicQuantizeMatMul, which turns x into uint8 with one scale and zero
 * point per tensor, runs the u8 x s8 product in MLAS (AVX512-VNNI / AVX-VNNI where the CPU
 * has it), and applies x's scale times each column's scale and the float bias on the way out.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { matmulShape, shapeError } from "../lib/onnx/shapes.ts";

export interface Int8LinearWeights {
  /** int8 [in, out]: already transposed into the B layout, so ONNX Runtime can prepack it. */
  weight: Value;
  /** float32 [out]: the dequantization scale of each output channel. */
  scale: Value;
  bias: Value | null;
}

export function linearInt8(g: GraphBuilder, x: Value, p: Int8LinearWeights): Value {
  const where = g.scoped("DynamicQuantizeMatMul");
  if (x.dtype !== "float32" || p.weight.dtype !== "int8" || p.scale.dtype !== "float32") {
    throw shapeError(where, `needs float32 x, int8 weight and float32 scale, got ${x.dtype}, ${p.weight.dtype}, ${p.scale.dtype}`);
  }
  const shape = matmulShape(where, x.shape, p.weight.shape);
  const inputs = p.bias ? [x, p.weight, p.scale, null, p.bias] : [x, p.weight, p.scale];
  return g.node("DynamicQuantizeMatMul", inputs, [{ dtype: "float32", shape }], {}, "com.microsoft")[0];
}
