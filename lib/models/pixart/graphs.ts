/**
 * PixArt-alpha and PixArt-Sigma as ONNX graphs shaped for FORA (docs/design.md §3), one run per
 * denoising step, plus a text graph run once per prompt:
 *
 * - text:     caption features (T5 output) [b, n, Dc] -> caption projection -> every block's
 *             cross-attention keys and values, text_k / text_v [L, b, n, D].
 * - full:     the whole model; also emits, for each upcoming reuse timestep t_j, the summed
 *             residual R_j = sum_k gate_msa_k(t_j) A_k + X_k + gate_mlp_k(t_j) M_k, where X_k
 *             is block k's (ungated) cross-attention output: cross-attention cached.
 * - reuse:    patch embedding, x_L = x_0 + R_j, final layer.
 * - full_xr:  the whole model; emits the per-block A_k and M_k as `features` [2, L, 2B, T, D]
 *             (for cross-attention recomputed on reuse steps).
 * - reuse_xr: per block x += gate_msa_k(t) A_k; x += cross_attn_k(x); x += gate_mlp_k(t) M_k:
 *             the cached self-attention and MLP, the cross-attention computed afresh.
 * - blocks:   the literal per-block path; `reuse` (self-attention and MLP) and `reuse_cross`
 *             flags per block choose between computing and the cache inputs (an `If` each);
 *             all A_k, X_k, M_k are returned.
 *
 * Conditioning is the timestep alone (adaLN-single), so every gate is one D-vector per step,
 * shared by the batch. The 1024-MS models add the embedding of the image's height, width and
 * aspect ratio to the timestep embedding; those follow from the latent size, which is static
 * in each graph, so they are constants of the graph (pixel size = latent size x the VAE
 * factor, as diffusers' pipeline passes its sampling height and width). Captions enter as
 * keys and values of the real tokens only: no padding, no mask (what lets the fused attention
 * kernels run). With `cfg` the batch is doubled
 * [cond; uncond] inside; each half attends to its own caption (cond_k/v, uncond_k/v: the two
 * lengths may differ), and out = cond + mask (s - 1)(cond - uncond), per output channel.
 */
import { GraphBuilder, type GraphData, type Value } from "../../onnx/builder.ts";
import type { WeightSource } from "../../weights/source.ts";
import { gatedResidualSum } from "../../../kernels/residual_sum.ts";
import { geluTanh } from "../../../kernels/activations.ts";
import {
  guidanceInputs,
  latentTokens,
  modulatedSelfAttention,
  outputGuided,
  reuseGraph,
  type StepGraphOptions,
  type StepIO,
} from "../../../kernels/step_graph.ts";
import { finalModulation, tableModulation, tBlock } from "../../../kernels/adaln_single.ts";
import { attendText, textKeysValues } from "../../../kernels/cross_attention.ts";
import { linear, linearOf } from "../../../kernels/linear.ts";
import { mlp } from "../../../kernels/mlp.ts";
import { gatedResidual, layerNormModulate } from "../../../kernels/modulation.ts";
import { unpatchify } from "../../../kernels/patch_embedding.ts";
import { timestepEmbedderOf, timestepEmbedding } from "../../../kernels/timestep_embedding.ts";
import { PIXART_FREQ_DIVISOR, PIXART_NORM_EPS, type PixartConfig } from "./config.ts";
import { gridSize, type LatentSize, numTokens, outChannels, patchRows, trainedLatent } from "../patch_grid.ts";
import { type Linear, loadPixartWeights, type PixartBlockWeights, type PixartWeights } from "./weights.ts";

export type PixartGraphKind = "text" | "full" | "reuse" | "full_xr" | "reuse_xr" | "blocks";
export const PIXART_STEP_KINDS = ["full", "reuse", "full_xr", "reuse_xr", "blocks"] as const;

/** With `cfg`, each half of the batch attends to its own caption (cond, uncond). */
export interface PixartGraphOptions extends StepGraphOptions {
  /** Latent height and width of the step graphs; the trained square size unless given. */
  latent?: LatentSize;
  /** Pixels per latent pixel (2^(VAE levels - 1)), for the micro-conditions; diffusers assumes 8 without a VAE. */
  vaeScaleFactor?: number;
}

export const DEFAULT_VAE_SCALE_FACTOR = 8;

export function buildPixartGraphs(src: WeightSource, cfg: PixartConfig, opts: PixartGraphOptions): Record<PixartGraphKind, GraphData> {
  const w = loadPixartWeights(src, cfg);
  return {
    text: buildText(w, cfg, opts),
    full: buildFull(w, cfg, opts, true),
    reuse: reuseGraph("pixart_reuse", opts.computeType, (g) => stepInputs(g, w, cfg, opts), cfg),
    full_xr: buildFull(w, cfg, opts, false),
    reuse_xr: buildReuseRecomputeCross(w, cfg, opts),
    blocks: buildBlocks(w, cfg, opts),
  };
}

// ---- the graphs ------------------------------------------------------------------

function buildText(w: PixartWeights, cfg: PixartConfig, opts: PixartGraphOptions): GraphData {
  const g = new GraphBuilder("pixart_text", opts.computeType);
  const caption = g.input("caption", "float32", ["batch", "tokens", cfg.captionChannels]);
  const y = g.scope("y_embedder", () => linear(g, geluTanh(g, linear(g, caption, linearOf(g, w.captionFc1))), linearOf(g, w.captionFc2)));
  const ks: Value[] = [], vs: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}/cross_attn`, () => {
      const [kk, vv] = textKeysValues(g, y, linearOf(g, b.crossK), linearOf(g, b.crossV));
      ks.push(g.unsqueeze(kk, [0]));
      vs.push(g.unsqueeze(vv, [0]));
    })
  );
  g.output(g.concat(ks, 0), "text_k");
  g.output(g.concat(vs, 0), "text_v");
  return g.data();
}

function buildFull(w: PixartWeights, cfg: PixartConfig, opts: PixartGraphOptions, cacheCross: boolean): GraphData {
  const g = new GraphBuilder(cacheCross ? "pixart_full" : "pixart_full_xr", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const reuseT = cacheCross ? g.input("reuse_timesteps", "float32", ["reuse"], { keepFloat32: true }) : null;
  let x = io.tokens;
  const attn: Value[] = [], cross: Value[] = [], mlps: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const r = pixartBlock(g, x, io, b, k, cfg, opts);
      x = r.x;
      attn.push(r.attn), cross.push(r.cross), mlps.push(r.mlp);
    })
  );
  io.finish(x);
  if (reuseT) {
    g.scope("residuals", () => g.output(reuseResiduals(g, w, io, reuseT, attn, cross, mlps), "residuals"));
  } else {
    g.output(g.concat([g.unsqueeze(stack(g, attn), [0]), g.unsqueeze(stack(g, mlps), [0])], 0), "features");
  }
  return g.data();
}

function buildReuseRecomputeCross(w: PixartWeights, cfg: PixartConfig, opts: PixartGraphOptions): GraphData {
  const g = new GraphBuilder("pixart_reuse_xr", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const features = g.input("features", "float32", [2, cfg.depth, io.batch2, numTokens(cfg, io.latent), cfg.hiddenSize]);
  const cachedAttn = layer(g, features, 0), cachedMlp = layer(g, features, 1);
  let x = io.tokens;
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const [, , gateMsa, , , gateMlp] = tableModulation(g, io.t0, g.weight(b.table));
      const x1 = gatedResidual(g, x, gateMsa, layer(g, cachedAttn, k));
      const x2 = g.add(x1, g.scope("cross_attn", () => io.crossAttention(g, x1, b, k)));
      x = gatedResidual(g, x2, gateMlp, layer(g, cachedMlp, k));
    })
  );
  io.finish(x);
  return g.data();
}

function buildBlocks(w: PixartWeights, cfg: PixartConfig, opts: PixartGraphOptions): GraphData {
  const g = new GraphBuilder("pixart_blocks", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const L = cfg.depth, shape = [L, io.batch2, numTokens(cfg, io.latent), cfg.hiddenSize];
  const reuse = g.input("reuse", "bool", [L]);
  const reuseCross = g.input("reuse_cross", "bool", [L]);
  const cachedAttn = g.input("cached_attn", "float32", shape);
  const cachedCross = g.input("cached_cross", "float32", shape);
  const cachedMlp = g.input("cached_mlp", "float32", shape);
  const flag = (f: Value, k: number) => g.reshape(g.slice(f, 0, k, k + 1), []);
  const cachedOr = (f: Value, cache: Value, k: number, compute: (s: GraphBuilder) => Value) =>
    g.ifElse(flag(f, k), (s) => [s.reshape(s.slice(cache, 0, k, k + 1), [-1, ...(shape.slice(2) as number[])])], (s) => [compute(s)])[0];
  let x = io.tokens;
  const attn: Value[] = [], cross: Value[] = [], mlps: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const m = tableModulation(g, io.t0, g.weight(b.table));
      const x0 = x;
      const a = cachedOr(reuse, cachedAttn, k, (s) => selfAttentionOf(s, x0, m, b, cfg, opts));
      const x1 = gatedResidual(g, x0, m[2], a);
      const xc = cachedOr(reuseCross, cachedCross, k, (s) => io.crossAttention(s, x1, b, k));
      const x2 = g.add(x1, xc);
      const f = cachedOr(reuse, cachedMlp, k, (s) => mlpOf(s, x2, m, b));
      x = gatedResidual(g, x2, m[5], f);
      attn.push(a), cross.push(xc), mlps.push(f);
    })
  );
  io.finish(x);
  g.output(stack(g, attn), "attn");
  g.output(stack(g, cross), "cross");
  g.output(stack(g, mlps), "mlp");
  return g.data();
}

// ---- shared parts ----------------------------------------------------------------

interface PixartStepIO extends StepIO {
  latent: LatentSize;
  /** Timestep embedding [1, D] (micro-conditions included) and t_block output [1, 6D]. */
  tEmb: Value;
  t0: Value;
  /** The conditioning embedding of model times t [n]: timestep embedding plus micro-conditions, [n, D]. */
  condition(t: Value): Value;
  /** Block k's cross-attention of x [2B or B, T, D] to the captions (output projection included). */
  crossAttention(gb: GraphBuilder, x: Value, b: PixartBlockWeights, k: number): Value;
}

function stepInputs(g: GraphBuilder, w: PixartWeights, cfg: PixartConfig, opts: PixartGraphOptions): PixartStepIO {
  const C = cfg.inChannels, D = cfg.hiddenSize, L = cfg.depth;
  const size = opts.latent ?? trainedLatent(cfg), T = numTokens(cfg, size), { cols } = patchRows(cfg, size);
  const latent = g.input("latent", "float32", ["batch", C, size.height, size.width]);
  const t = g.input("timestep", "float32", [1], { keepFloat32: true });
  const condK = g.input("cond_k", "float32", [L, "batch", "cond_tokens", D]);
  const condV = g.input("cond_v", "float32", [L, "batch", "cond_tokens", D]);
  const uncondK = opts.cfg ? g.input("uncond_k", "float32", [L, "batch", "uncond_tokens", D]) : null;
  const uncondV = opts.cfg ? g.input("uncond_v", "float32", [L, "batch", "uncond_tokens", D]) : null;
  const guidance = guidanceInputs(g, cfg, opts.cfg);
  const x = opts.cfg ? g.concat([latent, latent], 0) : latent;
  const tokens = latentTokens(g, x, w.patch, cfg, size, { baseSize: gridSize(cfg), interpolationScale: cfg.interpolationScale });
  const sizeEmb = w.sizeEmbedders ? g.scope("size_embedder", () => microConditions(g, w, size, opts.vaeScaleFactor)) : null;
  const condition = (tv: Value) => {
    const e = timestepEmbedding(g, tv, timestepEmbedderOf(g, w.tFc1, w.tFc2), PIXART_FREQ_DIVISOR);
    return sizeEmb ? g.add(e, sizeEmb) : e;
  };
  const tEmb = condition(t);
  const t0 = tBlock(g, tEmb, linearOf(g, w.tBlock));
  const kind = opts.attention ?? "portable";
  return {
    batch2: opts.cfg ? "batch2" : "batch",
    tokens,
    latent: size,
    tEmb,
    t0,
    condition,
    crossAttention(gb, xin, b, k) {
      const q = linear(gb, xin, linearOf(gb, b.crossQ));
      let core: Value;
      if (uncondK && uncondV) {
        const halves = gb.reshape(q, [2, -1, T, D]);
        const qc = gb.gather(halves, gb.scalar(0, "int64"), 0), qu = gb.gather(halves, gb.scalar(1, "int64"), 0);
        core = gb.concat([
          attendText(gb, qc, layer(gb, condK, k), layer(gb, condV, k), cfg.numHeads, kind),
          attendText(gb, qu, layer(gb, uncondK, k), layer(gb, uncondV, k), cfg.numHeads, kind),
        ], 0);
      } else {
        core = attendText(gb, q, layer(gb, condK, k), layer(gb, condV, k), cfg.numHeads, kind);
      }
      return linear(gb, core, linearOf(gb, b.crossProj));
    },
    finish(xL) {
      const out = g.scope("final_layer", () => {
        const [shift, scale_] = finalModulation(g, tEmb, g.weight(w.finalTable));
        const y = linear(g, layerNormModulate(g, xL, shift, scale_, PIXART_NORM_EPS), linearOf(g, w.finalLinear));
        return unpatchify(g, y, size.height / cfg.patchSize, cfg.patchSize, outChannels(cfg), cols);
      });
      outputGuided(g, out, guidance, cfg);
    },
  };
}

function selfAttentionOf(g: GraphBuilder, x: Value, m: Value[], b: PixartBlockWeights, cfg: PixartConfig, opts: PixartGraphOptions): Value {
  return modulatedSelfAttention(g, x, m[0], m[1], PIXART_NORM_EPS, b, cfg.numHeads, opts.attention);
}

function mlpOf(g: GraphBuilder, x: Value, m: Value[], b: PixartBlockWeights): Value {
  return mlp(g, layerNormModulate(g, x, m[3], m[4], PIXART_NORM_EPS), { fc1: linearOf(g, b.fc1), fc2: linearOf(g, b.fc2) });
}

/** One PixArt block; also returns A_k, X_k and M_k (before gating). */
function pixartBlock(
  g: GraphBuilder,
  x: Value,
  io: PixartStepIO,
  b: PixartBlockWeights,
  k: number,
  cfg: PixartConfig,
  opts: PixartGraphOptions,
) {
  const m = tableModulation(g, io.t0, g.weight(b.table));
  const attn = g.scope("attn", () => selfAttentionOf(g, x, m, b, cfg, opts));
  const x1 = gatedResidual(g, x, m[2], attn);
  const cross = g.scope("cross_attn", () => io.crossAttention(g, x1, b, k));
  const x2 = g.add(x1, cross);
  const f = g.scope("mlp", () => mlpOf(g, x2, m, b));
  return { x: gatedResidual(g, x2, m[5], f), attn, cross, mlp: f };
}

/**
 * The micro-conditions' embedding [1, D]: height and width (pixels) through the resolution
 * embedder, the aspect ratio height / width through its own, each as a 256-dim sinusoid like a
 * timestep, concatenated [height, width, aspect ratio] (diffusers' PixArtAlphaCombinedTimestepSizeEmbeddings).
 */
function microConditions(g: GraphBuilder, w: PixartWeights, latent: LatentSize, vaeScaleFactor = DEFAULT_VAE_SCALE_FACTOR): Value {
  const e = w.sizeEmbedders!;
  const height = latent.height * vaeScaleFactor, width = latent.width * vaeScaleFactor;
  const embed = (values: number[], m: { fc1: Linear; fc2: Linear }) =>
    timestepEmbedding(g, g.constant(values, [values.length], "float32"), timestepEmbedderOf(g, m.fc1, m.fc2), PIXART_FREQ_DIVISOR);
  const resolution = g.reshape(embed([height, width], e.resolution), [1, -1]); // [1, 2D/3]
  return g.concat([resolution, embed([height / width], e.aspectRatio)], 1);
}

/**
 * R_j for each upcoming reuse timestep: [J, 2B, T, D] (kernels/residual_sum.ts). The gates
 * of step j are one D-vector per block and branch (adaLN-single: they depend on t_j only);
 * the cross-attention outputs are ungated and add the same sum to every R_j.
 */
function reuseResiduals(
  g: GraphBuilder,
  w: PixartWeights,
  io: PixartStepIO,
  reuseT: Value,
  attn: Value[],
  cross: Value[],
  mlps: Value[],
): Value {
  const t0 = tBlock(g, io.condition(reuseT), linearOf(g, w.tBlock)); // [J, 6D]
  const gates: Value[] = [], features: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const m = tableModulation(g, t0, g.weight(b.table)); // 6 x [J, D]
      gates.push(g.unsqueeze(m[2], [1]), g.unsqueeze(m[5], [1])); // [J, 1, D]
      features.push(attn[k], mlps[k]);
    })
  );
  const crossSum = cross.reduce((acc, c) => g.add(acc, c));
  return g.add(gatedResidualSum(g, reuseT, gates, features), crossSum);
}

/** Layer k of a stacked [L, ...] value. */
function layer(g: GraphBuilder, stacked: Value, k: number): Value {
  return g.gather(stacked, g.scalar(k, "int64"), 0);
}

function stack(g: GraphBuilder, xs: Value[]): Value {
  return g.concat(xs.map((x) => g.unsqueeze(x, [0])), 0);
}
