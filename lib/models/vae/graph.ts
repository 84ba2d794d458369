/**
 * The Stable Diffusion VAE decoder as one ONNX graph, from a diffusers AutoencoderKL
 * checkpoint (names `post_quant_conv.*`, `decoder.*`):
 *
 *   latent [N, latent_channels, h, w] (float32)
 *     -> / scaling_factor (+ shift_factor) -> post_quant_conv (1x1) -> decoder.conv_in (3x3)
 *     -> mid_block: resnet, attention, resnet
 *     -> up_blocks (channels = reversed block_out_channels), each layers_per_block+1
 *        resnets, then nearest-2x + conv on all but the last
 *     -> conv_norm_out (GroupNorm), SiLU, conv_out
 *   image [N, out_channels, f*h, f*w] (float32, about [-1, 1], not clamped), f = 2^(blocks-1)
 *
 * Node names carry the module path ("decoder/up_blocks.1/resnets.0/conv1/Conv_42") so
 * profiles attribute time to model parts.
 */
import { type ComputeType, GraphBuilder, type GraphData, type Value } from "../../onnx/builder.ts";
import { formatShape, shapeError } from "../../onnx/shapes.ts";
import type { WeightSource } from "../../weights/source.ts";
import { silu } from "../../../kernels/activations.ts";
import { conv2d, loadConv } from "../../../kernels/conv.ts";
import { groupNorm, type GroupNormOptions, loadGroupNorm } from "../../../kernels/groupnorm.ts";
import { loadVaeResnet, vaeResnet } from "../../../kernels/vae_resnet.ts";
import { loadVaeAttention, vaeAttention } from "../../../kernels/vae_attention.ts";
import { loadUpsample, upsample } from "../../../kernels/upsample.ts";
import { upscaleFactor, type VaeConfig } from "./config.ts";

export const VAE_INPUT = "latent";
export const VAE_OUTPUT = "image";

export interface VaeDecoderShape {
  /** Batch size, or a name for a dynamic batch. Default "batch" (dynamic). */
  batch?: number | string;
  /** Latent height and width. Default 32 x 32 (256 x 256 images with the SD VAE). */
  height?: number;
  width?: number;
}

export interface VaeDecoderOptions {
  /** Keep GroupNorm statistics in float32 in a float16 graph (see kernels/groupnorm.ts). */
  groupNormFloat32Stats?: boolean;
}

export function buildVaeDecoderGraph(
  src: WeightSource,
  cfg: VaeConfig,
  computeType: ComputeType,
  shape: VaeDecoderShape = {},
  opts: VaeDecoderOptions = {},
): GraphData {
  const g = new GraphBuilder("vae_decoder", computeType);
  const batch = shape.batch ?? "batch", height = shape.height ?? 32, width = shape.width ?? 32;
  const norm: GroupNormOptions = { groups: cfg.normNumGroups, float32Stats: opts.groupNormFloat32Stats };
  const chans = [...cfg.blockOutChannels].reverse();
  const lc = cfg.latentChannels;

  let x: Value = g.input(VAE_INPUT, "float32", [batch, lc, height, width]);
  x = g.scope("scale_latent", () => {
    const scaled = g.div(x, g.scalar(cfg.scalingFactor));
    return cfg.shiftFactor !== 0 ? g.add(scaled, g.scalar(cfg.shiftFactor)) : scaled;
  });
  if (cfg.usePostQuantConv) {
    x = g.scope("post_quant_conv", () => conv2d(g, x, loadConv(g, src, "post_quant_conv", lc, lc, 1)));
  }
  x = g.scope("decoder", () => {
    let h = g.scope("conv_in", () => conv2d(g, x, loadConv(g, src, "decoder.conv_in", chans[0], lc, 3)));
    h = g.scope("mid_block", () => {
      const p = "decoder.mid_block";
      let m = g.scope("resnets.0", () => vaeResnet(g, h, loadVaeResnet(g, src, `${p}.resnets.0`, chans[0], chans[0]), norm));
      if (cfg.midBlockAddAttention) {
        m = g.scope("attentions.0", () => vaeAttention(g, m, loadVaeAttention(g, src, `${p}.attentions.0`, chans[0]), norm));
      }
      return g.scope("resnets.1", () => vaeResnet(g, m, loadVaeResnet(g, src, `${p}.resnets.1`, chans[0], chans[0]), norm));
    });
    chans.forEach((cout, i) => {
      const p = `decoder.up_blocks.${i}`;
      h = g.scope(`up_blocks.${i}`, () => {
        let u = h;
        for (let j = 0; j <= cfg.layersPerBlock; j++) {
          const cin = j === 0 ? chans[Math.max(i - 1, 0)] : cout;
          u = g.scope(`resnets.${j}`, () => vaeResnet(g, u, loadVaeResnet(g, src, `${p}.resnets.${j}`, cin, cout), norm));
        }
        if (i < chans.length - 1) {
          u = g.scope("upsamplers.0", () => upsample(g, u, loadUpsample(g, src, `${p}.upsamplers.0`, cout)));
        }
        return u;
      });
    });
    const last = chans[chans.length - 1];
    h = g.scope("conv_norm_out", () => silu(g, groupNorm(g, h, loadGroupNorm(g, src, "decoder.conv_norm_out", last), norm)));
    return g.scope("conv_out", () => conv2d(g, h, loadConv(g, src, "decoder.conv_out", cfg.outChannels, last, 3)));
  });
  const f = upscaleFactor(cfg);
  const expected = [cfg.outChannels, height * f, width * f];
  if (x.shape.slice(1).some((d, k) => d !== expected[k])) {
    throw shapeError("vae_decoder", `built ${formatShape(x.shape)}, expected [N, ${expected.join(", ")}]`);
  }
  g.output(x, VAE_OUTPUT);
  return g.data();
}
