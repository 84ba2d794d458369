/**
 * DiT as ONNX graphs shaped for FORA (docs/design.md §3): one run per denoising step.
 *
 * - full:   the whole model; also emits, for each upcoming reuse timestep t_j, the
 *           summed residual R_j = sum_k gate_msa_k(c_j) A_k + gate_mlp_k(c_j) M_k.
 * - reuse:  patch embedding, x_L = x_0 + R_j, final layer: a cached step.
 * - probe:  patch embedding and block 0's modulated input LN(x_0)(1 + scale_msa) + shift_msa
 *           only: the dynamic policy's indicator (its relative L1 change between steps,
 *           TeaCache-like), cheaper than a reuse step.
 * - partial_full: the full graph whose R_j sum only the blocks flagged in `residual_mask`
 *           [L]: the reused blocks of partial reuse.
 * - partial_reuse: a partial-reuse step: the blocks flagged in `compute_blocks` [L] run
 *           (an `If` per block), the others pass x through, and `residual` (R_j over
 *           the reused blocks) is added where the reused run starts, before block
 *           `residual_at`: 0 when the last B blocks are computed, B when the first B are.
 * - blocks: the literal per-block path; each block either computes its attention and
 *           MLP outputs or takes them from the cache inputs (an `If` per block), and
 *           all of them are returned, for analysis and per-layer policies.
 *
 * With `cfg`, a graph takes B conditional samples, doubles the batch with the null
 * class inside ([cond; uncond]), and returns the B guided outputs:
 * out = cond + mask * (s - 1) * (cond - uncond), per output channel.
 */
import { GraphBuilder, type GraphData, type Value } from "../../onnx/builder.ts";
import type { WeightSource } from "../../weights/source.ts";
import { silu } from "../../../kernels/activations.ts";
import { gatedResidualSum } from "../../../kernels/residual_sum.ts";
import { labelEmbedding, nullLabels } from "../../../kernels/label_embedding.ts";
import { linear, linearOf, type LinearTensors, type LinearWeights } from "../../../kernels/linear.ts";
import {
  guidanceInputs,
  latentTokens,
  modulatedSelfAttention,
  outputGuided,
  residualInput,
  reuseGraph,
  type StepGraphOptions,
  type StepIO,
} from "../../../kernels/step_graph.ts";
import { mlp } from "../../../kernels/mlp.ts";
import { adaLNModulation, gatedResidual, layerNormModulate } from "../../../kernels/modulation.ts";
import { unpatchify } from "../../../kernels/patch_embedding.ts";
import { timestepEmbedderOf, timestepEmbedding } from "../../../kernels/timestep_embedding.ts";
import { type DitConfig, gridSize, NORM_EPS, numTokens, outChannels } from "./config.ts";
import { type DitBlockWeights, type DitWeights, linearRows, loadDitWeights } from "./weights.ts";
import type { DitInt8Weights } from "./int8.ts";

export type DitGraphKind = "full" | "reuse" | "blocks" | "partial_full" | "partial_reuse" | "probe";

/** With `cfg`, the unconditional half of the batch is the null class. */
export interface DitGraphOptions extends StepGraphOptions {
  /** int8 graphs: the quantized block linears (./int8.ts); needs computeType float32. */
  int8?: DitInt8Weights;
}

export { detectNaming } from "./weights.ts";

export function buildDitGraphs(src: WeightSource, cfg: DitConfig, opts: DitGraphOptions): Record<DitGraphKind, GraphData> {
  const w = loadDitWeights(src, cfg);
  return {
    full: buildFull(w, cfg, opts, false),
    reuse: reuseGraph("dit_reuse", opts.computeType, (g) => stepInputs(g, w, cfg, opts), cfg),
    blocks: buildBlocks(w, cfg, opts),
    partial_full: buildFull(w, cfg, opts, true),
    partial_reuse: buildPartialReuse(w, cfg, opts),
    probe: buildProbe(w, cfg, opts),
  };
}

// ---- the step graphs ----------------------------------------------------------

/** `masked`: the partial_full graph (R_j over the blocks flagged in `residual_mask` only). */
function buildFull(w: DitWeights, cfg: DitConfig, opts: DitGraphOptions, masked: boolean): GraphData {
  const g = new GraphBuilder(masked ? "dit_partial_full" : "dit_full", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const reuseT = g.input("reuse_timesteps", "float32", ["reuse"], { keepFloat32: true });
  const mask = masked ? g.input("residual_mask", "float32", [cfg.depth]) : undefined;
  let x = io.tokens;
  const cached: { attn: Value; mlp: Value }[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const r = ditBlock(g, x, io.c, b, cfg, opts);
      x = r.x;
      cached.push({ attn: r.attn, mlp: r.mlp });
    })
  );
  io.finish(x);
  g.scope("residuals", () => g.output(reuseResiduals(g, w, cfg, reuseT, io.labelEmb, cached, mask), "residuals"));
  return g.data();
}

/** Block 0's modulated attention input, the dynamic policy's indicator tensor (no final layer: no `model_out`). */
function buildProbe(w: DitWeights, cfg: DitConfig, opts: DitGraphOptions): GraphData {
  const g = new GraphBuilder("dit_probe", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  g.scope("blocks.0", () => {
    const [shift, scale] = adaLNModulation(g, io.c, linearOf(g, w.blocks[0].adaLN), 6);
    g.output(layerNormModulate(g, io.tokens, shift, scale, NORM_EPS), "probe");
  });
  return g.data();
}

function buildPartialReuse(w: DitWeights, cfg: DitConfig, opts: DitGraphOptions): GraphData {
  const g = new GraphBuilder("dit_partial_reuse", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const residual = residualInput(g, io, cfg);
  const compute = g.input("compute_blocks", "bool", [cfg.depth]);
  const at = g.input("residual_at", "int64", [1]);
  let x = io.tokens;
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const here = g.reshape(g.node("Equal", [at, g.ints([k])], [{ dtype: "bool", shape: [1] }])[0], []);
      const before = x;
      // ifElse copies each branch output through an Identity, so a branch may return its input as is.
      [x] = g.ifElse(here, (s) => [s.add(before, residual)], () => [before]);
      const flag = g.reshape(g.slice(compute, 0, k, k + 1), []);
      const xin = x;
      [x] = g.ifElse(flag, (s) => [ditBlock(s, xin, io.c, b, cfg, opts).x], () => [xin]);
    })
  );
  io.finish(x);
  return g.data();
}

function buildBlocks(w: DitWeights, cfg: DitConfig, opts: DitGraphOptions): GraphData {
  const g = new GraphBuilder("dit_blocks", opts.computeType);
  const io = stepInputs(g, w, cfg, opts);
  const T = numTokens(cfg), D = cfg.hiddenSize, L = cfg.depth;
  const reuse = g.input("reuse", "bool", [L]);
  const cachedAttn = g.input("cached_attn", "float32", [L, io.batch2, T, D]);
  const cachedMlp = g.input("cached_mlp", "float32", [L, io.batch2, T, D]);
  let x = io.tokens;
  const attnOut: Value[] = [], mlpOut: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      const [, , gateMsa, , , gateMlp] = adaLNModulation(g, io.c, linearOf(g, b.adaLN), 6);
      const flag = g.reshape(g.slice(reuse, 0, k, k + 1), []);
      const xin = x;
      const [attn, mlpOutK] = g.ifElse(
        flag,
        (s) => [s.reshape(s.slice(cachedAttn, 0, k, k + 1), [-1, T, D]), s.reshape(s.slice(cachedMlp, 0, k, k + 1), [-1, T, D])],
        (s) => {
          const r = ditBlock(s, xin, io.c, b, cfg, opts);
          return [r.attn, r.mlp];
        },
      );
      x = gatedResidual(g, gatedResidual(g, x, gateMsa, attn), gateMlp, mlpOutK);
      attnOut.push(g.unsqueeze(attn, [0]));
      mlpOut.push(g.unsqueeze(mlpOutK, [0]));
    })
  );
  io.finish(x);
  g.output(g.concat(attnOut, 0), "attn");
  g.output(g.concat(mlpOut, 0), "mlp");
  return g.data();
}

// ---- shared parts ----------------------------------------------------------------

interface DitStepIO extends StepIO {
  c: Value;
  /** Label embedding of the (doubled) batch: reused to condition the upcoming steps. */
  labelEmb: Value;
}

/** Inputs shared by every step graph and everything before the first block. */
function stepInputs(g: GraphBuilder, w: DitWeights, cfg: DitConfig, opts: DitGraphOptions): DitStepIO {
  const C = cfg.inChannels, S = cfg.inputSize;
  const latent = g.input("latent", "float32", ["batch", C, S, S]);
  const t = g.input("timestep", "float32", [1], { keepFloat32: true });
  const labels = g.input("class_labels", "int64", ["batch"]);
  const guidance = guidanceInputs(g, cfg, opts.cfg);
  const x = opts.cfg ? g.concat([latent, latent], 0) : latent;
  const y = opts.cfg ? g.concat([labels, nullLabels(g, labels, cfg.numClasses)], 0) : labels;
  const tokens = latentTokens(g, x, w.patch, cfg);
  const labelEmb = labelEmbedding(g, y, g.weight(w.labelTable));
  const c = g.add(timestepEmbedding(g, t, timestepEmbedderOf(g, w.tFc1, w.tFc2), cfg.freqDivisor), labelEmb);
  return {
    batch2: opts.cfg ? "batch2" : "batch",
    tokens,
    c,
    labelEmb,
    finish(xL: Value) {
      const out = g.scope("final_layer", () => {
        const [shift, scale_] = adaLNModulation(g, c, linearOf(g, w.finalAdaLN), 2);
        const y = linear(g, layerNormModulate(g, xL, shift, scale_, NORM_EPS), linearOf(g, w.finalLinear));
        return unpatchify(g, y, gridSize(cfg), cfg.patchSize, outChannels(cfg));
      });
      outputGuided(g, out, guidance, cfg);
    },
  };
}

/** One adaLN-Zero block; also returns its attention and MLP outputs before gating. */
function ditBlock(g: GraphBuilder, x: Value, c: Value, b: DitBlockWeights, cfg: DitConfig, opts: DitGraphOptions) {
  const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = adaLNModulation(g, c, linearOf(g, b.adaLN), 6);
  const gemm = (l: LinearTensors) => blockLinear(g, l, opts);
  const attn = g.scope("attn", () => modulatedSelfAttention(g, x, shiftMsa, scaleMsa, NORM_EPS, b, cfg.numHeads, opts.attention, gemm));
  const x1 = gatedResidual(g, x, gateMsa, attn);
  const m = g.scope(
    "mlp",
    () => mlp(g, layerNormModulate(g, x1, shiftMlp, scaleMlp, cfg.mlpNormEps), { fc1: gemm(b.fc1), fc2: gemm(b.fc2) }),
  );
  return { x: gatedResidual(g, x1, gateMlp, m), attn, mlp: m };
}

/**
 * R_j for each upcoming reuse timestep: [J, 2B, T, D] (kernels/residual_sum.ts). Only
 * the gate rows of each block's adaLN are evaluated (2 of its 6 chunks).
 */
function reuseResiduals(
  g: GraphBuilder,
  w: DitWeights,
  cfg: DitConfig,
  reuseT: Value,
  labelEmb: Value,
  cached: { attn: Value; mlp: Value }[],
  mask?: Value,
): Value {
  const cj = g.add(
    g.unsqueeze(timestepEmbedding(g, reuseT, timestepEmbedderOf(g, w.tFc1, w.tFc2), cfg.freqDivisor), [1]),
    g.unsqueeze(labelEmb, [0]),
  );
  const act = silu(g, cj);
  const gates: Value[] = [], features: Value[] = [];
  w.blocks.forEach((b, k) =>
    g.scope(`blocks.${k}`, () => {
      // partial_full: residual_mask[k] (1, or 0 for a block computed every step) scales both gates.
      const gate = (chunk: number) => {
        const v = linear(g, act, linearOf(g, linearRows(b.adaLN, chunk, 6)));
        return mask ? g.mul(v, g.slice(mask, 0, k, k + 1)) : v;
      };
      gates.push(gate(2), gate(5));
      features.push(cached[k].attn, cached[k].mlp);
    })
  );
  return gatedResidualSum(g, reuseT, gates, features);
}

/** A block's GEMM linear: its int8 version in int8 graphs, else the checkpoint's. */
function blockLinear(g: GraphBuilder, l: LinearTensors, opts: DitGraphOptions): LinearWeights {
  if (!opts.int8) return linearOf(g, l);
  const q = opts.int8.get(l.weight.name);
  if (!q) throw new Error(`internal: no int8 weight for ${l.weight.name}`);
  return { weight: g.weight(q.weight), scale: g.weight(q.scale), bias: g.weight(l.bias) };
}
