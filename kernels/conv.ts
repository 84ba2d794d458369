/**
 * 2-D convolution with PyTorch's weight layout [out, in, kh, kw]. Padding defaults to
 * "same" for odd square kernels at stride 1 ((k-1)/2 on every side), which is what every
 * convolution of the VAE decoder uses (3x3 pad 1, 1x1 pad 0).
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { formatShape, shapeError } from "../lib/onnx/shapes.ts";
import type { WeightSource } from "../lib/weights/source.ts";

export interface ConvWeights {
  /** [out, in, kh, kw] */
  weight: Value;
  /** [out], or null for a convolution without bias. */
  bias: Value | null;
}

export interface ConvOptions {
  stride?: number;
  /** Zero padding on each side; default (k-1)/2 for an odd square kernel. */
  pad?: number;
}

export function conv2d(g: GraphBuilder, x: Value, p: ConvWeights, opts: ConvOptions = {}): Value {
  const where = g.scoped("Conv");
  const ws = p.weight.shape;
  if (ws.length !== 4 || ws.some((d) => typeof d !== "number")) {
    throw shapeError(where, `conv weight must be a static [out, in, kh, kw], got ${formatShape(ws)}`);
  }
  if (x.shape.length !== 4) throw shapeError(where, `conv input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  const [oc, , kh, kw] = ws as number[];
  if (p.bias && (p.bias.shape.length !== 1 || p.bias.shape[0] !== oc)) {
    throw shapeError(where, `conv bias ${formatShape(p.bias.shape)} does not match ${oc} output channels`);
  }
  let pad = opts.pad;
  if (pad === undefined) {
    if (kh !== kw || kh % 2 !== 1) {
      throw shapeError(where, `kernel ${kh}x${kw} has no default padding; pass opts.pad`);
    }
    pad = (kh - 1) / 2;
  }
  return g.conv(x, p.weight, p.bias, { stride: opts.stride ?? 1, pad });
}

/**
 * `{prefix}.weight` [out, in, k, k] and `{prefix}.bias` [out] from a checkpoint, in the
 * builder's compute type.
 */
export function loadConv(
  g: GraphBuilder,
  src: WeightSource,
  prefix: string,
  outChannels: number,
  inChannels: number,
  kernel: number,
): ConvWeights {
  return {
    weight: g.weight(src.get(`${prefix}.weight`, [outChannels, inChannels, kernel, kernel])),
    bias: g.weight(src.get(`${prefix}.bias`, [outChannels])),
  };
}
