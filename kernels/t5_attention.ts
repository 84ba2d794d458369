/**
 * T5 self-attention: no 1/sqrt(d) scaling of the scores (T5 folds it into its weights), a
 * learned relative position bias added to the scores, and the softmax in float32.
 *
 * The bias: each (query i, key j) pair falls into a bucket of the relative position j - i
 * (exact for small distances, logarithmic up to max_distance, the sign kept in encoders);
 * the bucket indexes a [buckets, heads] table held by the first block and shared by all.
 * Buckets are tabulated here for every relative position a sequence of up to `maxLength`
 * tokens can have, so the graph only gathers.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

/**
 * Bidirectional T5 bucket of each relative position -(maxLength-1) .. maxLength-1, in float32
 * arithmetic as T5's reference computes it (a bucket boundary must land where it lands there).
 */
export function relativePositionBuckets(maxLength: number, numBuckets: number, maxDistance: number): BigInt64Array {
  const half = numBuckets / 2, maxExact = half / 2, f = Math.fround;
  const logRange = f(Math.log(maxDistance / maxExact));
  const out = new BigInt64Array(2 * maxLength - 1);
  for (let i = 0; i < out.length; i++) {
    const rel = i - (maxLength - 1);
    const n = Math.abs(rel);
    let bucket: number;
    if (n < maxExact) bucket = n;
    else {
      const large = maxExact + Math.trunc(f(f(f(Math.log(f(n / maxExact))) / logRange) * (half - maxExact)));
      bucket = Math.min(large, half - 1);
    }
    out[i] = BigInt((rel > 0 ? half : 0) + bucket);
  }
  return out;
}

/**
 * Position bias [1, heads, n, n] (float32) for a sequence of n tokens (n read from `ids`,
 * [batch, n]); `table` is the [buckets, heads] relative attention bias.
 */
export function relativePositionBias(g: GraphBuilder, ids: Value, table: Value, buckets: BigInt64Array, maxLength: number): Value {
  return g.scope("position_bias", () => {
    const n = ids.shape[1];
    const [shape] = g.node("Shape", [ids], [{ dtype: "int64", shape: [2] }]);
    const len = g.gather(shape, g.scalar(1, "int64"), 0);
    const [pos] = g.node("Range", [g.scalar(0, "int64"), len, g.scalar(1, "int64")], [{ dtype: "int64", shape: [n] }]);
    // index of relative position (key - query) in the bucket table
    const rel = g.add(g.sub(g.unsqueeze(pos, [0]), g.unsqueeze(pos, [1])), g.scalar(maxLength - 1, "int64"));
    const bucket = g.gather(g.constant(buckets, [buckets.length], "int64"), rel, 0); // [n, n]
    const bias = g.gather(g.cast(table, "float32"), bucket, 0); // [n, n, heads]
    return g.unsqueeze(g.transpose(bias, [2, 0, 1]), [0]);
  });
}

/**
 * softmax(q k^T + bias) v over heads, scores and softmax in float32; q/k/v [n, T, H*dk] in the
 * compute type, bias [1, H, T, T] float32 -> [n, T, H*dk] in the compute type.
 */
export function t5AttentionCore(g: GraphBuilder, q: Value, k: Value, v: Value, bias: Value, heads: number): Value {
  const d = q.shape[2] as number, dk = d / heads;
  const split = (t: Value) => g.transpose(g.reshape(t, [0, 0, heads, dk]), [0, 2, 1, 3]);
  const kt = g.transpose(g.reshape(k, [0, 0, heads, dk]), [0, 2, 3, 1]);
  const scores = g.add(g.cast(g.matmul(split(q), kt), "float32"), bias);
  const probs = g.toCompute(g.softmax(scores, -1));
  const o = g.matmul(probs, split(v));
  return g.reshape(g.transpose(o, [0, 2, 1, 3]), [0, 0, d]);
}
