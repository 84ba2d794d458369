/**
 * T5's LayerNorm: RMS normalisation without mean subtraction or bias,
 * y = w * x / sqrt(mean(x^2) + eps). Evaluated in float32 whatever the compute type
 * (T5 v1.1 activations exceed fp16's range); the result is returned in float32.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

/** x: any float [..., D]; weight [D] (any float) -> float32 [..., D]. */
export function rmsNorm(g: GraphBuilder, x: Value, weight: Value, eps: number): Value {
  return g.scope("rms_norm", () => {
    const x32 = g.cast(x, "float32");
    const sq = g.mul(x32, x32);
    // ReduceMean with an `axes` attribute: the opset-17 form (axes became an input in opset 18).
    const [variance] = g.node("ReduceMean", [sq], [{ dtype: "float32", shape: [...sq.shape.slice(0, -1), 1] }], {
      axes: [-1],
      keepdims: 1,
    });
    const inv = g.unary("Reciprocal", g.unary("Sqrt", g.add(variance, g.scalar(eps, "float32"))));
    return g.mul(g.mul(x32, inv), g.cast(weight, "float32"));
  });
}
