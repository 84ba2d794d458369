/** Patchify (a stride-p convolution) and its inverse, unpatchify. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

/** x [n, c, H, W] -> tokens [n, (H/p)(W/p), hidden] plus the position embedding. */
export function patchEmbedding(
  g: GraphBuilder,
  x: Value,
  w: { weight: Value; bias: Value },
  patch: number,
  posEmbed: Value,
): Value {
  return g.scope("x_embedder", () => {
    const hidden = w.weight.shape[0] as number;
    const y = g.conv(x, w.weight, w.bias, { stride: patch });
    const tokens = g.transpose(g.reshape(y, [0, hidden, -1]), [0, 2, 1]);
    return g.add(tokens, posEmbed);
  });
}

/** tokens [n, h*w, p*p*c] ordered (p, q, c) -> image [n, c, h*p, w*p]; the grid is h rows of w tokens (w = h unless given). */
export function unpatchify(g: GraphBuilder, x: Value, grid: number, patch: number, channels: number, gridWidth = grid): Value {
  const y = g.reshape(x, [-1, grid, gridWidth, patch, patch, channels]);
  const z = g.transpose(y, [0, 5, 1, 3, 2, 4]);
  return g.reshape(z, [-1, channels, grid * patch, gridWidth * patch]);
}
