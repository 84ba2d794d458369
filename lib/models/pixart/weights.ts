/**
 * PixArt weights in one canonical structure, read from either naming scheme. The original
 * layout packs self-attention Q/K/V into `attn.qkv` and cross-attention K/V into
 * `cross_attn.kv_linear` (K rows first); each part is a byte range of the same file. The
 * 1024-MS models' size embedders are `csize_embedder` / `ar_embedder` (original) or
 * `adaln_single.emb.resolution_embedder` / `aspect_ratio_embedder` (diffusers).
 */
import type { ExternalTensor } from "../../onnx/builder.ts";
import type { LinearTensors } from "../../../kernels/linear.ts";
import { layerTensors, type WeightSource } from "../../weights/source.ts";
import { ForaError } from "../../errors.ts";
import { TIMESTEP_FREQ_DIM } from "../dit/config.ts";
import type { PixartConfig, PixartNaming } from "./config.ts";
import { outChannels } from "../patch_grid.ts";

/** A linear layer's weight [out, in] and bias [out]. */
export type Linear = LinearTensors;

export interface PixartBlockWeights {
  /** [6, D]: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp offsets. */
  table: ExternalTensor;
  q: Linear;
  k: Linear;
  v: Linear;
  proj: Linear;
  crossQ: Linear;
  crossK: Linear;
  crossV: Linear;
  crossProj: Linear;
  fc1: Linear;
  fc2: Linear;
}

export interface PixartWeights {
  patch: Linear;
  tFc1: Linear;
  tFc2: Linear;
  /** adaLN-single: SiLU -> Linear(D, 6D), shared by every block. */
  tBlock: Linear;
  /** Micro-conditions: 256-dim sinusoid -> Linear-SiLU-Linear to D/3, for height and width, and for the aspect ratio. */
  sizeEmbedders: null | { resolution: { fc1: Linear; fc2: Linear }; aspectRatio: { fc1: Linear; fc2: Linear } };
  captionFc1: Linear;
  captionFc2: Linear;
  /** The learned null caption [maxTokens, captionChannels]; original checkpoints only. */
  nullCaption: ExternalTensor | null;
  blocks: PixartBlockWeights[];
  /** [2, D]: shift, scale offsets of the final layer (added to the timestep embedding). */
  finalTable: ExternalTensor;
  finalLinear: Linear;
}

/** Which scheme a PixArt checkpoint uses, from its tensor names (undefined: not PixArt). */
export function detectPixartNaming(names: Iterable<string>): PixartNaming | undefined {
  for (const n of names) {
    if (n.startsWith("t_block.") || n.startsWith("y_embedder.y_proj.")) return "original";
    if (n.startsWith("adaln_single.") || n.startsWith("caption_projection.")) return "diffusers";
  }
  return undefined;
}

export function loadPixartWeights(src: WeightSource, cfg: PixartConfig): PixartWeights {
  const D = cfg.hiddenSize, p = cfg.patchSize, C = cfg.inChannels, Dc = cfg.captionChannels;
  const lin = (prefix: string, out: number, inp: number): Linear => layerTensors(src, prefix, [out, inp]);
  const rows = (prefix: string, total: number, part: number): Linear => {
    src.get(`${prefix}.weight`, [total * D, D]);
    src.get(`${prefix}.bias`, [total * D]);
    return { weight: src.rows(`${prefix}.weight`, part * D, D), bias: src.rows(`${prefix}.bias`, part * D, D) };
  };
  const patch = (prefix: string): Linear => layerTensors(src, prefix, [D, C, p, p]);
  const final = p * p * outChannels(cfg);
  const sizeEmbedder = (prefix: string, fc1: string, fc2: string) => ({
    fc1: lin(`${prefix}.${fc1}`, D / 3, TIMESTEP_FREQ_DIM),
    fc2: lin(`${prefix}.${fc2}`, D / 3, D / 3),
  });
  const sizeEmbedders = (names: [string, string, string, string]) =>
    cfg.microConditions
      ? { resolution: sizeEmbedder(names[0], names[2], names[3]), aspectRatio: sizeEmbedder(names[1], names[2], names[3]) }
      : null;
  if (cfg.naming === "original") {
    return {
      patch: patch("x_embedder.proj"),
      tFc1: lin("t_embedder.mlp.0", D, TIMESTEP_FREQ_DIM),
      tFc2: lin("t_embedder.mlp.2", D, D),
      tBlock: lin("t_block.1", 6 * D, D),
      sizeEmbedders: sizeEmbedders(["csize_embedder", "ar_embedder", "mlp.0", "mlp.2"]),
      captionFc1: lin("y_embedder.y_proj.fc1", D, Dc),
      captionFc2: lin("y_embedder.y_proj.fc2", D, D),
      nullCaption: src.has("y_embedder.y_embedding") ? src.get("y_embedder.y_embedding", [cfg.maxTokens, Dc]) : null,
      blocks: Array.from({ length: cfg.depth }, (_, i) => {
        const b = `blocks.${i}`;
        return {
          table: src.get(`${b}.scale_shift_table`, [6, D]),
          q: rows(`${b}.attn.qkv`, 3, 0),
          k: rows(`${b}.attn.qkv`, 3, 1),
          v: rows(`${b}.attn.qkv`, 3, 2),
          proj: lin(`${b}.attn.proj`, D, D),
          crossQ: lin(`${b}.cross_attn.q_linear`, D, D),
          crossK: rows(`${b}.cross_attn.kv_linear`, 2, 0),
          crossV: rows(`${b}.cross_attn.kv_linear`, 2, 1),
          crossProj: lin(`${b}.cross_attn.proj`, D, D),
          fc1: lin(`${b}.mlp.fc1`, 4 * D, D),
          fc2: lin(`${b}.mlp.fc2`, D, 4 * D),
        };
      }),
      finalTable: src.get("final_layer.scale_shift_table", [2, D]),
      finalLinear: lin("final_layer.linear", final, D),
    };
  }
  return {
    patch: patch("pos_embed.proj"),
    tFc1: lin("adaln_single.emb.timestep_embedder.linear_1", D, TIMESTEP_FREQ_DIM),
    tFc2: lin("adaln_single.emb.timestep_embedder.linear_2", D, D),
    tBlock: lin("adaln_single.linear", 6 * D, D),
    sizeEmbedders: sizeEmbedders([
      "adaln_single.emb.resolution_embedder",
      "adaln_single.emb.aspect_ratio_embedder",
      "linear_1",
      "linear_2",
    ]),
    captionFc1: lin("caption_projection.linear_1", D, Dc),
    captionFc2: lin("caption_projection.linear_2", D, D),
    nullCaption: null,
    blocks: Array.from({ length: cfg.depth }, (_, i) => {
      const b = `transformer_blocks.${i}`;
      return {
        table: src.get(`${b}.scale_shift_table`, [6, D]),
        q: lin(`${b}.attn1.to_q`, D, D),
        k: lin(`${b}.attn1.to_k`, D, D),
        v: lin(`${b}.attn1.to_v`, D, D),
        proj: lin(`${b}.attn1.to_out.0`, D, D),
        crossQ: lin(`${b}.attn2.to_q`, D, D),
        crossK: lin(`${b}.attn2.to_k`, D, D),
        crossV: lin(`${b}.attn2.to_v`, D, D),
        crossProj: lin(`${b}.attn2.to_out.0`, D, D),
        fc1: lin(`${b}.ff.net.0.proj`, 4 * D, D),
        fc2: lin(`${b}.ff.net.2`, D, 4 * D),
      };
    }),
    finalTable: src.get("scale_shift_table", [2, D]),
    finalLinear: lin("proj_out", final, D),
  };
}

/**
 * Tensors of network parts fora does not build, from PixArt-Sigma's training code: key/value
 * token compression (`attn.sr`, the strided convolution, and its `attn.norm`) and query/key
 * LayerNorms (`attn.q_norm` / `k_norm`, diffusers `attn1.norm_q` / `norm_k`).
 */
export function refuseUnsupportedTensors(names: Iterable<string>, origin: string): void {
  for (const n of names) {
    const m = /\.attn\.(sr|norm)\./.test(n)
      ? "key/value token compression"
      : /\.attn1?\.(q_norm|k_norm|norm_q|norm_k)\./.test(n)
      ? "query/key normalisation"
      : null;
    if (m) {
      throw new ForaError(
        "weights",
        `${origin}: tensor "${n}" belongs to ${m}, which fora does not run; use a checkpoint trained without it`,
      );
    }
  }
}

export function assertPixartNaming(naming: PixartNaming | undefined, origin: string): PixartNaming {
  if (!naming) {
    throw new ForaError("weights", `${origin}: no PixArt tensors found (expected "t_block.*" or "adaln_single.*" names)`);
  }
  return naming;
}
