/**
 * FORA's summed residual for upcoming reuse steps: R[j] = sum_k G_k[j] * F_k, where F_k
 * are the 2L cached, ungated branch outputs of a full step ([2B, T, D] each: attention
 * and MLP of every block) and G_k[j] their gates at reuse step j ([J, 2B or 1, D]).
 * Because a reuse step's gates are known in advance, FORA's literal per-layer cache
 * collapses into this one tensor per reuse step.
 *
 * J is a runtime size; the sum takes the cheaper of two exact forms for it (measured on
 * DiT-S/2 and XL/2, bench/RESULTS.md): nothing when no reuse step follows (N = 1, the
 * last full step of a run), broadcast multiply-adds for a few steps, and one batched
 * MatMul over (b, d) for many.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

/** Above this many reuse steps the MatMul form is faster than the multiply-adds. */
const MAX_J_FOR_ACCUMULATION = 3;

/** gates[k]: [J, 2B | 1, D]; features[k]: [2B, T, D]; `count`: the [J] input that sets J. */
export function gatedResidualSum(g: GraphBuilder, count: Value, gates: Value[], features: Value[]): Value {
  const J = g.reshape(g.node("Shape", [count], [{ dtype: "int64", shape: [1] }])[0], []);
  const none = g.node("Equal", [J, g.scalar(0, "int64")], [{ dtype: "bool", shape: [] }])[0];
  const few = g.node("LessOrEqual", [J, g.scalar(MAX_J_FOR_ACCUMULATION, "int64")], [{ dtype: "bool", shape: [] }])[0];
  const [r] = g.ifElse(
    none,
    (s) => [s.slice(s.unsqueeze(features[0], [0]), 0, 0, 0)],
    (s) =>
      s.ifElse(
        few,
        (a) => [byAccumulation(a, gates, features)],
        (m) => [byMatmul(m, gates, features)],
      ),
  );
  return r;
}

/** Block by block: streams J x 2L activation-sized products, cheap for small J. */
function byAccumulation(g: GraphBuilder, gates: Value[], features: Value[]): Value {
  return features
    .map((f, k) => g.mul(g.unsqueeze(gates[k], [-2]), f))
    .reduce((sum, term) => g.add(sum, term));
}

/**
 * One batched MatMul over (b, d): [B', D, J, 2L] x [2B, D, 2L, T]. Each F_k is transposed
 * on its own ([2B, T, D] -> [2B, D, T], a plain 2-D transpose per sample) and stacked
 * along a new axis: far faster than one 4-D transpose of the stack.
 */
function byMatmul(g: GraphBuilder, gates: Value[], features: Value[]): Value {
  const G = g.transpose(g.concat(gates.map((x) => g.unsqueeze(x, [0])), 0), [2, 3, 1, 0]); // [B', D, J, 2L]
  const F = g.concat(features.map((f) => g.unsqueeze(g.transpose(f, [0, 2, 1]), [2])), 2); // [2B, D, 2L, T]
  return g.transpose(g.matmul(G, F), [2, 0, 3, 1]); // [2B, D, J, T] -> [J, 2B, T, D]
}
