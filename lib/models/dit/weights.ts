/**
 * DiT weights in one canonical structure, read from either naming scheme. Original
 * checkpoints pack Q/K/V into one `qkv` matrix; its row blocks are contiguous on disk,
 * so each of Q, K and V becomes a byte range of the same file (no copy).
 */
import type { ExternalTensor } from "../../onnx/builder.ts";
import type { LinearTensors } from "../../../kernels/linear.ts";
import { layerTensors, tensorRows, type WeightSource } from "../../weights/source.ts";
import { ForaError } from "../../errors.ts";
import { type DitConfig, type Naming, outChannels, TIMESTEP_FREQ_DIM } from "./config.ts";

/** A linear layer's weight [out, in] and bias [out]. */
export type Linear = LinearTensors;

export interface DitBlockWeights {
  q: Linear;
  k: Linear;
  v: Linear;
  proj: Linear;
  fc1: Linear;
  fc2: Linear;
  /** SiLU -> Linear(D, 6D): shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp. */
  adaLN: Linear;
}

export interface DitWeights {
  patch: Linear;
  tFc1: Linear;
  tFc2: Linear;
  labelTable: ExternalTensor;
  blocks: DitBlockWeights[];
  finalAdaLN: Linear;
  finalLinear: Linear;
}

/** Which scheme a checkpoint uses, from its tensor names. */
export function detectNaming(names: Iterable<string>): Naming | undefined {
  for (const n of names) {
    if (n.startsWith("blocks.") || n.startsWith("final_layer.")) return "original";
    if (n.startsWith("transformer_blocks.") || n.startsWith("proj_out_")) return "diffusers";
  }
  return undefined;
}

export function loadDitWeights(src: WeightSource, cfg: DitConfig): DitWeights {
  const D = cfg.hiddenSize, p = cfg.patchSize, C = cfg.inChannels;
  const lin = (prefix: string, out: number, inp: number): Linear => layerTensors(src, prefix, [out, inp]);
  const conv = (prefix: string): Linear => layerTensors(src, prefix, [D, C, p, p]);
  const final = p * p * outChannels(cfg);
  const table = (name: string) => src.get(name, [cfg.numClasses + 1, D]);
  if (cfg.naming === "original") {
    const qkv = (i: number, part: number): Linear => ({
      weight: src.rows(checked(src, `blocks.${i}.attn.qkv.weight`, [3 * D, D]), part * D, D),
      bias: src.rows(checked(src, `blocks.${i}.attn.qkv.bias`, [3 * D]), part * D, D),
    });
    return {
      patch: conv("x_embedder.proj"),
      tFc1: lin("t_embedder.mlp.0", D, TIMESTEP_FREQ_DIM),
      tFc2: lin("t_embedder.mlp.2", D, D),
      labelTable: table("y_embedder.embedding_table.weight"),
      blocks: Array.from({ length: cfg.depth }, (_, i) => ({
        q: qkv(i, 0),
        k: qkv(i, 1),
        v: qkv(i, 2),
        proj: lin(`blocks.${i}.attn.proj`, D, D),
        fc1: lin(`blocks.${i}.mlp.fc1`, 4 * D, D),
        fc2: lin(`blocks.${i}.mlp.fc2`, D, 4 * D),
        adaLN: lin(`blocks.${i}.adaLN_modulation.1`, 6 * D, D),
      })),
      finalAdaLN: lin("final_layer.adaLN_modulation.1", 2 * D, D),
      finalLinear: lin("final_layer.linear", final, D),
    };
  }
  // diffusers copies the embedders into every block; real checkpoints hold identical
  // copies, and the model conditions every block on block 0's.
  const emb = "transformer_blocks.0.norm1.emb";
  return {
    patch: conv("pos_embed.proj"),
    tFc1: lin(`${emb}.timestep_embedder.linear_1`, D, TIMESTEP_FREQ_DIM),
    tFc2: lin(`${emb}.timestep_embedder.linear_2`, D, D),
    labelTable: table(`${emb}.class_embedder.embedding_table.weight`),
    blocks: Array.from({ length: cfg.depth }, (_, i) => {
      const b = `transformer_blocks.${i}`;
      return {
        q: lin(`${b}.attn1.to_q`, D, D),
        k: lin(`${b}.attn1.to_k`, D, D),
        v: lin(`${b}.attn1.to_v`, D, D),
        proj: lin(`${b}.attn1.to_out.0`, D, D),
        fc1: lin(`${b}.ff.net.0.proj`, 4 * D, D),
        fc2: lin(`${b}.ff.net.2`, D, 4 * D),
        adaLN: lin(`${b}.norm1.linear`, 6 * D, D),
      };
    }),
    finalAdaLN: lin("proj_out_1", 2 * D, D),
    finalLinear: lin("proj_out_2", final, D),
  };
}

/** Row block `index` of `count` equal blocks of a Linear: e.g. the gate rows of adaLN. */
export function linearRows(l: Linear, index: number, count: number): Linear {
  const rows = l.weight.shape[0] / count;
  return { weight: tensorRows(l.weight, index * rows, rows), bias: tensorRows(l.bias, index * rows, rows) };
}

function checked(src: WeightSource, name: string, shape: number[]): string {
  src.get(name, shape);
  return name;
}

export function assertNaming(naming: Naming | undefined, origin: string): Naming {
  if (!naming) {
    throw new ForaError("weights", `${origin}: no DiT tensors found (expected "blocks.N..." or "transformer_blocks.N..." names)`);
  }
  return naming;
}
