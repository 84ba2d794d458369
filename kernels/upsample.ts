/**
 * The VAE's Upsample2D: nearest-neighbour 2x (ONNX Resize, coordinates mapped as
 * floor(out / 2), exactly PyTorch's `interpolate(mode="nearest")`), then a 3x3 conv.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import type { Dim } from "../lib/onnx/shapes.ts";
import { formatShape, shapeError } from "../lib/onnx/shapes.ts";
import type { WeightSource } from "../lib/weights/source.ts";
import { conv2d, type ConvWeights, loadConv } from "./conv.ts";

/** [N, C, H, W] -> [N, C, 2H, 2W], each pixel repeated in a 2x2 square. */
export function upsampleNearest2x(g: GraphBuilder, x: Value): Value {
  if (x.shape.length !== 4) throw shapeError(g.scoped("Resize"), `input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  const scales = g.constant([1, 1, 2, 2], [4], "float32");
  const twice = (d: Dim): Dim => (typeof d === "number" ? 2 * d : `2*${d}`);
  const [n, c, h, w] = x.shape;
  return g.node("Resize", [x, null, scales], [{ dtype: x.dtype, shape: [n, c, twice(h), twice(w)] }], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  })[0];
}

/** Nearest 2x, then `conv` (3x3, pad 1). */
export function upsample(g: GraphBuilder, x: Value, conv: ConvWeights): Value {
  const up = upsampleNearest2x(g, x);
  return g.scope("conv", () => conv2d(g, up, conv));
}

/** `{prefix}.conv` of an Upsample2D (e.g. "decoder.up_blocks.0.upsamplers.0"). */
export function loadUpsample(g: GraphBuilder, src: WeightSource, prefix: string, channels: number): ConvWeights {
  return loadConv(g, src, `${prefix}.conv`, channels, channels, 3);
}
