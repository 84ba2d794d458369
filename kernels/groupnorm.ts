/**
 * GroupNorm over [N, C, ...spatial] as Reshape [N, G, rest] -> InstanceNormalization ->
 * Reshape back, then the per-channel affine. ONNX opset 17 has no GroupNormalization
 * (it arrived in 18 with a different affine), and this form runs on both the CPU and
 * CUDA execution providers. eps defaults to 1e-6, the VAE's.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import type { Dim } from "../lib/onnx/shapes.ts";
import { formatShape, shapeError } from "../lib/onnx/shapes.ts";
import type { WeightSource } from "../lib/weights/source.ts";

export interface GroupNormWeights {
  /** gamma, [C] */
  weight: Value;
  /** beta, [C] */
  bias: Value;
}

export interface GroupNormOptions {
  groups: number;
  /** Default 1e-6. */
  eps?: number;
  /**
   * Compute the statistics in float32 even when the graph computes in float16 (casts
   * the activation around InstanceNormalization). Off by default: ORT's kernels already
   * accumulate in float; this guards against float16 overflow of very large activations.
   */
  float32Stats?: boolean;
}

export const GROUP_NORM_EPS = 1e-6;

export function groupNorm(g: GraphBuilder, x: Value, p: GroupNormWeights, opts: GroupNormOptions): Value {
  const where = g.scoped("GroupNorm");
  const { groups } = opts;
  const eps = opts.eps ?? GROUP_NORM_EPS;
  if (x.shape.length < 3) throw shapeError(where, `input must be [N, C, ...spatial], got ${formatShape(x.shape)}`);
  const c = x.shape[1];
  if (typeof c !== "number") throw shapeError(where, `channel dim must be static, got ${formatShape(x.shape)}`);
  if (!Number.isInteger(groups) || groups <= 0 || c % groups !== 0) {
    throw shapeError(where, `${c} channels cannot be split into ${groups} groups`);
  }
  for (const [label, v] of [["weight", p.weight], ["bias", p.bias]] as const) {
    if (v.shape.length !== 1 || v.shape[0] !== c) {
      throw shapeError(where, `${label} has shape ${formatShape(v.shape)}, expected [${c}]`);
    }
  }
  const statsType = opts.float32Stats ? "float32" : x.dtype;
  const xs = g.cast(x, statsType);
  const spatial = x.shape.slice(2);
  const ones = (n: number) => g.constant(new Float32Array(n).fill(1), [n], statsType);
  const zeros = (n: number) => g.constant(new Float32Array(n), [n], statsType);
  const instanceNorm = (v: Value, scale: Value, bias: Value) =>
    g.node("InstanceNormalization", [v, scale, bias], [{ dtype: v.dtype, shape: v.shape }], {
      epsilon: { float: eps },
    })[0];

  if (groups === c && !opts.float32Stats) {
    // One channel per group: InstanceNormalization is GroupNorm, affine included.
    return instanceNorm(x, p.weight, p.bias);
  }
  const perGroup = spatial.every((d) => typeof d === "number") ? (c / groups) * (spatial as number[]).reduce((a, b) => a * b, 1) : -1;
  const grouped = g.reshape(xs, [0, groups, perGroup]);
  const normed = g.cast(reshapeLike(g, instanceNorm(grouped, ones(groups), zeros(groups)), x), x.dtype);
  const affineShape = [c, ...spatial.map(() => 1)];
  return g.add(g.mul(normed, g.reshape(p.weight, affineShape)), g.reshape(p.bias, affineShape));
}

/**
 * Reshapes `y` to the shape of `like`: a constant target when every dim past the batch is
 * static, else the runtime Shape of `like`.
 */
export function reshapeLike(g: GraphBuilder, y: Value, like: Value): Value {
  const rest = like.shape.slice(1);
  if (rest.every((d) => typeof d === "number")) return g.reshape(y, [0, ...(rest as number[])]);
  const shape = g.node("Shape", [like], [{ dtype: "int64", shape: [like.shape.length] }])[0];
  return g.node("Reshape", [y, shape], [{ dtype: y.dtype, shape: [...like.shape] as Dim[] }])[0];
}

/** `{prefix}.weight` and `{prefix}.bias`, both [channels]. */
export function loadGroupNorm(g: GraphBuilder, src: WeightSource, prefix: string, channels: number): GroupNormWeights {
  return {
    weight: g.weight(src.get(`${prefix}.weight`, [channels])),
    bias: g.weight(src.get(`${prefix}.bias`, [channels])),
  };
}
