/**
 * Shape arithmetic for the graph builder. Every op helper computes its output shape
 * here, so that a wrong wiring fails when the graph is built, naming the op, instead
 * of when ONNX Runtime loads or runs it. A dimension is a number, or a string for a
 * symbolic (runtime) size such as "batch".
 */
import { ForaError } from "../errors.ts";

export type Dim = number | string;
export type Shape = Dim[];

export function shapeError(where: string, message: string): ForaError {
  return new ForaError("graph", `${where}: ${message}`);
}

export function formatShape(s: Shape): string {
  return `[${s.join(", ")}]`;
}

/** Numpy-style broadcasting; symbolic dims are trusted to match (ORT checks them at run time). */
export function broadcast(where: string, ...shapes: Shape[]): Shape {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1) continue;
      if (dim === 1 || dim === d) dim = d;
      else if (typeof dim === "string" && typeof d === "number") dim = d;
      else if (typeof d === "string") continue; // symbolic: only checkable at run time
      else {
        throw shapeError(where, `cannot broadcast shapes ${shapes.map(formatShape).join(" and ")}`);
      }
    }
    out.push(dim);
  }
  return out;
}

export function matmulShape(where: string, a: Shape, b: Shape): Shape {
  if (a.length < 2 || b.length < 2) {
    throw shapeError(where, `MatMul needs rank >= 2, got ${formatShape(a)} x ${formatShape(b)}`);
  }
  const k1 = a[a.length - 1], k2 = b[b.length - 2];
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    throw shapeError(where, `MatMul inner dims differ: ${formatShape(a)} x ${formatShape(b)}`);
  }
  const batch = broadcast(where, a.slice(0, -2), b.slice(0, -2));
  return [...batch, a[a.length - 2], b[b.length - 1]];
}

export function numel(s: Shape): number | undefined {
  let n = 1;
  for (const d of s) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/** ONNX Reshape semantics: 0 copies the input dim, one -1 is inferred. */
export function reshapeShape(where: string, input: Shape, target: number[]): Shape {
  const out: Shape = target.map((d, i) => (d === 0 ? input[i] : d));
  const inferred = out.indexOf(-1);
  if (out.filter((d) => d === -1).length > 1) throw shapeError(where, "Reshape allows one -1");
  const total = numel(input);
  if (inferred >= 0) {
    const known = numel(out.filter((_, i) => i !== inferred));
    if (total !== undefined && known !== undefined) {
      if (known === 0 || total % known !== 0) {
        throw shapeError(where, `cannot reshape ${formatShape(input)} to ${formatShape(target)}`);
      }
      out[inferred] = total / known;
    } else {
      out[inferred] = `${where}:inferred`;
    }
  } else {
    const n = numel(out);
    if (total !== undefined && n !== undefined && n !== total) {
      throw shapeError(where, `cannot reshape ${formatShape(input)} (${total} elements) to ${formatShape(target)}`);
    }
  }
  return out;
}

export function normAxis(where: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw shapeError(where, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function sameDims(a: Dim, b: Dim): boolean {
  return a === b || typeof a === "string" || typeof b === "string";
}

export function addDims(a: Dim, b: Dim): Dim {
  return typeof a === "number" && typeof b === "number" ? a + b : `${a}+${b}`;
}
