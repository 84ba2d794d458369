/**
 * Analytic floating-point operation counts of one kernel, from its operator type and the
 * tensor shapes ONNX Runtime's profiler records for it. A multiply-add counts as 2 FLOPs
 * (MatMul [M,K]x[K,N]: 2MKN). Elementwise arithmetic counts 1 per output element;
 * composite or transcendental operators use the fixed costs below (per element), the
 * usual convention of analytic roofline counts. Data movement (Reshape, Transpose,
 * Concat, Gather, Split, ...) counts 0. int8 products (DynamicQuantizeMatMul) count as
 * their float equivalents, so GFLOP/s of int8 parts read as operations per second.
 */

/** FLOPs per output element of elementwise and normalisation operators. */
export const ELEMENTWISE_COST: Readonly<Record<string, number>> = {
  Add: 1,
  Sub: 1,
  Mul: 1,
  Div: 1,
  Neg: 1,
  Abs: 1,
  Max: 1,
  Min: 1,
  Sqrt: 1,
  Reciprocal: 1,
  Pow: 1,
  Where: 1,
  Sigmoid: 4,
  Tanh: 4,
  Erf: 4,
  Exp: 4,
  Log: 4,
  Sin: 4,
  Cos: 4,
  QuickGelu: 5,
  Gelu: 8,
  FastGelu: 8,
  BiasGelu: 9,
  Softmax: 5,
  LayerNormalization: 8,
  SimplifiedLayerNormalization: 6,
  SkipLayerNormalization: 9,
  InstanceNormalization: 8,
  GroupNorm: 8,
  ReduceMean: 1,
  ReduceSum: 1,
  Resize: 1,
};

export type Shape = readonly number[];

export interface KernelCost {
  flops: number;
  /**
   * Bytes of a weight operand the trace does not list: ONNX Runtime pre-packs constant
   * MatMul/Gemm weights at load time and then records neither their shape nor their size.
   */
  hiddenWeightBytes: number;
}

/** FLOPs of one kernel, and the bytes of a pre-packed weight it read (element size `itemBytes`). */
export function kernelCost(op: string, inputs: readonly Shape[], outputs: readonly Shape[], itemBytes = 4): KernelCost {
  const out = outputs[0];
  const prepacked = out !== undefined && inputs.length >= 1 &&
    (((op === "MatMul" || op === "FusedMatMul") && inputs.length === 1) ||
      (op === "Gemm" && inputs.length <= 2 && inputs[1]?.length !== 2));
  if (op === "DynamicQuantizeMatMul" && out !== undefined && inputs[0]) {
    // The int8 weight is pre-packed too: the trace then lists x, the scales and the bias, all
    // but x of rank 1. One byte per weight element.
    const weightListed = inputs[1]?.length === 2;
    return {
      flops: kernelFlops(op, inputs, outputs),
      hiddenWeightBytes: weightListed ? 0 : inputs[0][inputs[0].length - 1] * out[out.length - 1],
    };
  }
  if (!prepacked) return { flops: kernelFlops(op, inputs, outputs), hiddenWeightBytes: 0 };
  // y = a W (+ bias): K from the activation a, N from the output.
  const a = inputs[0], n = out[out.length - 1];
  const rows = out.length >= 2 ? out[out.length - 2] : 1;
  const k = a.length >= 2 && a[a.length - 2] !== rows && a[a.length - 1] === rows ? a[a.length - 2] : a[a.length - 1];
  const bias = op === "Gemm" && inputs.length === 2 ? size(out) : 0;
  return { flops: 2 * size(out) * k + bias, hiddenWeightBytes: k * n * itemBytes };
}

export function size(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Analytic FLOPs of one execution of `op` with these input and output shapes. */
export function kernelFlops(op: string, inputs: readonly Shape[], outputs: readonly Shape[]): number {
  const out = outputs[0];
  if (!out) return 0;
  switch (op) {
    case "MatMul":
    case "FusedMatMul":
      return inputs.length >= 2 ? 2 * size(out) * matmulInner(inputs[0], inputs[1]) : 0;
    case "DynamicQuantizeMatMul":
      // int8 multiply-adds of x [.., M, K] by the weight [K, N], counted like float ones.
      return inputs[0] ? 2 * size(out) * inputs[0][inputs[0].length - 1] : 0;
    case "Gemm": {
      if (inputs.length < 2 || out.length !== 2) return 0;
      const [m, n] = out, b = inputs[1];
      const k = b[1] === n && b[0] !== n ? b[0] : b[1] === n ? b[0] : b[1];
      return 2 * m * n * k + (inputs.length > 2 ? m * n : 0);
    }
    case "Conv":
    case "FusedConv": {
      // Multiply-adds per output position = the weight's size (groups included); positions =
      // batch x spatial size. ONNX Runtime's NCHWc layout appends an 8-channel block dim.
      if (inputs.length < 2) return 0;
      const spatial = out.length === 5 ? out.slice(2, 4) : out.slice(2);
      return 2 * out[0] * size(spatial) * size(inputs[1]) + (inputs.length > 2 ? size(out) : 0);
    }
    case "MultiHeadAttention":
    case "Attention": {
      // q [B, T, D], k [B, Tk, D], v [B, Tk, Dv]: scores and weighted sum, plus the softmax.
      const [q, k, v] = inputs;
      if (!q || !k || q.length !== 3 || k.length !== 3) return 0;
      const [b, t, d] = q, tk = k[1], dv = v?.[2] ?? d;
      return 2 * b * t * tk * d + 2 * b * t * tk * dv + 5 * b * t * tk;
    }
    default: {
      const cost = ELEMENTWISE_COST[op];
      if (cost === undefined) return 0;
      // Reductions read their whole input; everything else is per output element.
      const n = op.startsWith("Reduce") && inputs[0] ? size(inputs[0]) : size(out);
      return cost * n;
    }
  }
}

/** K of a (possibly transposed) batched product a [.., M, K] x b [.., K, N]. */
function matmulInner(a: Shape, b: Shape): number {
  if (a.length === 1) return a[0];
  const a1 = a[a.length - 1], a2 = a[a.length - 2];
  if (b.length === 1) return a1;
  const b1 = b[b.length - 1], b2 = b[b.length - 2];
  if (a1 === b2) return a1;
  if (a1 === b1) return a1; // b transposed
  if (a2 === b2) return a2; // a transposed
  return a2;
}
