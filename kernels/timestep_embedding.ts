/**
 * Timestep embedding: a 256-dim sinusoid of the (possibly fractional) model time,
 * [cos, sin] order, then Linear-SiLU-Linear. The sinusoid is evaluated in float32
 * even in fp16 graphs: t up to 999 times a frequency near 1 needs more than fp16's
 * 11 bits to land on the right phase.
 */
import type { GraphBuilder, Value } from "../lib/onnx/builder.ts";
import { silu } from "./activations.ts";
import { linear, linearOf, type LinearTensors, type LinearWeights } from "./linear.ts";

export interface TimestepEmbedderWeights {
  fc1: LinearWeights;
  fc2: LinearWeights;
}

/** The embedder's two layers as graph initializers. */
export function timestepEmbedderOf(g: GraphBuilder, fc1: LinearTensors, fc2: LinearTensors): TimestepEmbedderWeights {
  return { fc1: linearOf(g, fc1), fc2: linearOf(g, fc2) };
}

/** Frequencies exp(-ln(maxPeriod) k / divisor), k = 0..dim/2-1 (divisor: 128 DiT, 127 diffusers). */
export function sinusoidFrequencies(dim: number, divisor: number, maxPeriod = 10000): Float32Array {
  const half = dim / 2;
  return Float32Array.from({ length: half }, (_, k) => Math.exp((-Math.log(maxPeriod) * k) / divisor));
}

/** t: float32 [n] -> float32 [n, dim]. */
export function timestepSinusoid(g: GraphBuilder, t: Value, dim: number, divisor: number): Value {
  const freqs = g.constant(sinusoidFrequencies(dim, divisor), [1, dim / 2], "float32");
  const args = g.mul(g.unsqueeze(t, [1]), freqs);
  return g.concat([g.unary("Cos", args), g.unary("Sin", args)], 1);
}

/** t: float32 [n] -> [n, hidden] in the compute type. */
export function timestepEmbedding(
  g: GraphBuilder,
  t: Value,
  w: TimestepEmbedderWeights,
  divisor: number,
  freqDim = 256,
): Value {
  return g.scope("t_embedder", () => {
    const s = g.toCompute(timestepSinusoid(g, t, freqDim, divisor));
    return linear(g, silu(g, linear(g, s, w.fc1)), w.fc2);
  });
}
