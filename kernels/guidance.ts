/** Classifier-free guidance on a [cond; uncond] batch, per output channel. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

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
