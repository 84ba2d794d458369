/**
 * The VAE's ResnetBlock2D (no time embedding): norm1, SiLU, conv1 (3x3), norm2, SiLU,
 * conv2 (3x3), plus the input, through a 1x1 `conv_shortcut` when the channel count
 * changes. diffusers names: `norm1`, `conv1`, `norm2`, `conv2`, `conv_shortcut`.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { shapeError } from "../lib/onnx/shapes.ts";
import type { WeightSource } from "../lib/weights/source.ts";
import { silu } from "./activations.ts";
import { conv2d, type ConvWeights, loadConv } from "./conv.ts";
import { groupNorm, type GroupNormOptions, type GroupNormWeights, loadGroupNorm } from "./groupnorm.ts";

export interface VaeResnetWeights {
  norm1: GroupNormWeights;
  conv1: ConvWeights;
  norm2: GroupNormWeights;
  conv2: ConvWeights;
  /** 1x1 projection of the input; required when input and output channels differ. */
  convShortcut: ConvWeights | null;
}

export function vaeResnet(g: GraphBuilder, x: Value, p: VaeResnetWeights, norm: GroupNormOptions): Value {
  const cin = x.shape[1], cout = p.conv2.weight.shape[0];
  if (!p.convShortcut && cin !== cout) {
    throw shapeError(g.scoped("resnet"), `input has ${cin} channels, output ${cout}, and there is no conv_shortcut`);
  }
  let h = g.scope("norm1", () => silu(g, groupNorm(g, x, p.norm1, norm)));
  h = g.scope("conv1", () => conv2d(g, h, p.conv1));
  h = g.scope("norm2", () => silu(g, groupNorm(g, h, p.norm2, norm)));
  h = g.scope("conv2", () => conv2d(g, h, p.conv2));
  const shortcut = p.convShortcut ? g.scope("conv_shortcut", () => conv2d(g, x, p.convShortcut!)) : x;
  return g.add(shortcut, h);
}

/** Weights of a resnet at `prefix` (e.g. "decoder.up_blocks.1.resnets.0"). */
export function loadVaeResnet(
  g: GraphBuilder,
  src: WeightSource,
  prefix: string,
  inChannels: number,
  outChannels: number,
): VaeResnetWeights {
  const hasShortcut = src.has(`${prefix}.conv_shortcut.weight`);
  if (!hasShortcut && inChannels !== outChannels) {
    // Let the checkpoint report the missing tensor with its own hint.
    src.get(`${prefix}.conv_shortcut.weight`);
  }
  return {
    norm1: loadGroupNorm(g, src, `${prefix}.norm1`, inChannels),
    conv1: loadConv(g, src, `${prefix}.conv1`, outChannels, inChannels, 3),
    norm2: loadGroupNorm(g, src, `${prefix}.norm2`, outChannels),
    conv2: loadConv(g, src, `${prefix}.conv2`, outChannels, outChannels, 3),
    convShortcut: hasShortcut ? loadConv(g, src, `${prefix}.conv_shortcut`, outChannels, inChannels, 1) : null,
  };
}
