/** Classifier-free guidance on a [cond; uncond] batch, per output channel. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { outChannels, type PatchGrid } from "../lib/models/patch_grid.ts";

/**
 * The `guidance_mask` input: 1 on the guided output channels, the eps channels of the
 * reference ("ref": channels 0..2, DiT's own sampling) or all of them ("all": diffusers,
 * PixArt's pipeline); 0 on the rest (learned-sigma channels pass through from cond).
 */
export function guidanceMask(model: Pick<PatchGrid, "inChannels" | "learnSigma">, mode: "ref" | "all"): Float32Array {
  const mask = new Float32Array(outChannels(model));
  mask.fill(1, 0, mode === "all" ? model.inChannels : Math.min(3, model.inChannels));
  return mask;
}

/**
 * out [2B, C, H, W] = [cond; uncond] -> cond + mask (s - 1)(cond - uncond) [B, C, H, W]
 * (= uncond + s (cond - uncond) on the channels the mask marks; cond elsewhere).
 */
export function guideCondUncond(g: GraphBuilder, out: Value, scale: Value, mask: Value, channels: number): Value {
  const pairs = g.reshape(out, [2, -1, ...(out.shape.slice(1) as number[])]);
  const cond = g.gather(pairs, g.scalar(0, "int64"), 0);
  const uncond = g.gather(pairs, g.scalar(1, "int64"), 0);
  const weight = g.reshape(g.mul(mask, g.sub(scale, g.scalar(1))), [1, channels, 1, 1]);
  return g.add(cond, g.mul(weight, g.sub(cond, uncond)));
}
