/**
 * Random-weight DiT checkpoints in the original layout (model.safetensors + config.json),
 * for benchmarks and tests at real sizes: speed does not depend on weight values, and
 * no published weights can be downloaded here.
 */
import { join } from "node:path";
import { type DitConfig, outChannels, TIMESTEP_FREQ_DIM } from "../lib/models/dit/config.ts";
import { type WritableTensor, writeSafetensors } from "../lib/weights/safetensors.ts";

/** Deterministic uniform values in [-scale, scale] (xorshift32): fast enough for 675M weights. */
function randomTensor(shape: number[], scale: number, state: { s: number }): WritableTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = state.s;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  state.s = s;
  return { dtype: "F32", shape, data };
}

export function randomDitTensors(cfg: DitConfig, seed = 1): Record<string, WritableTensor> {
  const D = cfg.hiddenSize, p = cfg.patchSize, state = { s: seed | 1 };
  const t: Record<string, WritableTensor> = {};
  const linear = (name: string, out: number, inp: number) => {
    t[`${name}.weight`] = randomTensor([out, inp], 1 / Math.sqrt(inp), state);
    t[`${name}.bias`] = randomTensor([out], 0.02, state);
  };
  t["x_embedder.proj.weight"] = randomTensor([D, cfg.inChannels, p, p], 1 / Math.sqrt(cfg.inChannels * p * p), state);
  t["x_embedder.proj.bias"] = randomTensor([D], 0.02, state);
  linear("t_embedder.mlp.0", D, TIMESTEP_FREQ_DIM);
  linear("t_embedder.mlp.2", D, D);
  t["y_embedder.embedding_table.weight"] = randomTensor([cfg.numClasses + 1, D], 0.5, state);
  for (let i = 0; i < cfg.depth; i++) {
    linear(`blocks.${i}.attn.qkv`, 3 * D, D);
    linear(`blocks.${i}.attn.proj`, D, D);
    linear(`blocks.${i}.mlp.fc1`, 4 * D, D);
    linear(`blocks.${i}.mlp.fc2`, D, 4 * D);
    linear(`blocks.${i}.adaLN_modulation.1`, 6 * D, D);
  }
  linear("final_layer.adaLN_modulation.1", 2 * D, D);
  linear("final_layer.linear", p * p * outChannels(cfg), D);
  return t;
}

/** Writes an original-format DiT folder that `fora convert` reads. */
export async function writeRandomDit(dir: string, cfg: DitConfig, seed = 1): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, "model.safetensors"), randomDitTensors(cfg, seed));
  const config = {
    depth: cfg.depth,
    hidden_size: cfg.hiddenSize,
    num_heads: cfg.numHeads,
    patch_size: cfg.patchSize,
    input_size: cfg.inputSize,
    in_channels: cfg.inChannels,
    num_classes: cfg.numClasses,
    learn_sigma: cfg.learnSigma,
  };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}
