/**
 * The skeleton every step graph of a patch transformer shares (DiT, PixArt-alpha): the
 * latent turned into position-embedded tokens, the guidance inputs, and at the end the
 * guided `model_out`; and the reuse graph built on it, FORA's cached step x_L = x_0 + R.
 * The families differ in their conditioning and their blocks, not in these.
 */
import { type ComputeType, type ExternalTensor, GraphBuilder, type GraphData, type Value } from "../lib/onnx/builder.ts";
import { type LatentSize, numTokens, outChannels, patchRows, trainedLatent, type TransformerShape } from "../lib/models/patch_grid.ts";
import { type AttentionKind, selfAttention } from "./attention.ts";
import { linearOf, type LinearTensors, type LinearWeights } from "./linear.ts";
import { layerNormModulate } from "./modulation.ts";
import { guideCondUncond } from "./guidance.ts";
import { patchEmbedding } from "./patch_embedding.ts";
import { type PositionScaling, sinCosPositionEmbedding2d } from "./position_embedding.ts";

export interface StepGraphOptions {
  computeType: ComputeType;
  /** Classifier-free guidance inside the graph: the batch doubled [cond; uncond], B guided outputs. */
  cfg: boolean;
  attention?: AttentionKind;
}

/** What a family's step graph exposes to the shared graphs. */
export interface StepIO {
  /** 2B with guidance, B without. */
  batch2: string;
  tokens: Value;
  /** The latent size the graph takes when it is not the trained square (PixArt's non-square latents). */
  latent?: LatentSize;
  /** Final layer, unpatchify, guidance and the `model_out` output. */
  finish(x: Value): void;
}

/** `guidance_scale` and `guidance_mask`, the inputs of classifier-free guidance (null without it). */
export function guidanceInputs(g: GraphBuilder, c: TransformerShape, guided: boolean): { scale: Value; mask: Value } | null {
  if (!guided) return null;
  return { scale: g.input("guidance_scale", "float32", [1]), mask: g.input("guidance_mask", "float32", [outChannels(c)]) };
}

/**
 * x [n, C, H, W] as tokens [n, T, D] with the 2D sin-cos position embedding; H x W is the
 * trained square unless `latent` says otherwise, and `scaling` spans the table over the
 * trained grid (PixArt's interpolation scale).
 */
export function latentTokens(
  g: GraphBuilder,
  x: Value,
  patch: { weight: ExternalTensor; bias: ExternalTensor },
  c: TransformerShape,
  latent: LatentSize = trainedLatent(c),
  scaling?: PositionScaling,
): Value {
  const { rows, cols } = patchRows(c, latent);
  const pos = g.constant(sinCosPositionEmbedding2d(c.hiddenSize, rows, cols, scaling), [1, rows * cols, c.hiddenSize]);
  return patchEmbedding(g, x, { weight: g.weight(patch.weight), bias: g.weight(patch.bias) }, c.patchSize, pos);
}

/** The model output [2B or B, outC, H, W] guided (when the graph is) and written as `model_out`. */
export function outputGuided(g: GraphBuilder, out: Value, guidance: { scale: Value; mask: Value } | null, c: TransformerShape): void {
  g.output(guidance ? g.scope("guidance", () => guideCondUncond(g, out, guidance.scale, guidance.mask, outChannels(c))) : out, "model_out");
}

/** `residual` [2B or B, T, D]: a cached step's R_j. */
export function residualInput(g: GraphBuilder, io: StepIO, c: TransformerShape): Value {
  return g.input("residual", "float32", [io.batch2, numTokens(c, io.latent), c.hiddenSize]);
}

/** The reuse graph, FORA's cached step on a family's step inputs: x_L = x_0 + R_j, then the final layer. */
export function reuseGraph(name: string, computeType: ComputeType, inputs: (g: GraphBuilder) => StepIO, c: TransformerShape): GraphData {
  const g = new GraphBuilder(name, computeType);
  const io = inputs(g);
  io.finish(g.add(io.tokens, residualInput(g, io, c)));
  return g.data();
}

/** Self-attention of the block's modulated input LN(x)(1 + scale) + shift (DiT's and PixArt's blocks alike). */
export function modulatedSelfAttention(
  g: GraphBuilder,
  x: Value,
  shift: Value,
  scale: Value,
  eps: number,
  w: { q: LinearTensors; k: LinearTensors; v: LinearTensors; proj: LinearTensors },
  heads: number,
  kind: AttentionKind = "portable",
  /** How a projection becomes graph weights: as the file holds it, or quantized (int8 DiT graphs). */
  toLinear: (l: LinearTensors) => LinearWeights = (l) => linearOf(g, l),
): Value {
  const input = layerNormModulate(g, x, shift, scale, eps);
  return selfAttention(g, input, { q: toLinear(w.q), k: toLinear(w.k), v: toLinear(w.v), out: toLinear(w.proj) }, heads, kind);
}
