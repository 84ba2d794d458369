/** Class-label embedding; the table's last row is the null class used for guidance. */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";

/** labels: int64 [n] -> [n, hidden]. */
export function labelEmbedding(g: GraphBuilder, labels: Value, table: Value): Value {
  return g.scope("y_embedder", () => g.gather(table, labels, 0));
}

/** The null label (index numClasses) for every entry of `labels`. */
export function nullLabels(g: GraphBuilder, labels: Value, numClasses: number): Value {
  return g.add(g.mul(labels, g.scalar(0, "int64")), g.scalar(numClasses, "int64"));
}
