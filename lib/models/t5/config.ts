/** The T5 v1.1 encoder's sizes, from a transformers `config.json` (T5EncoderModel / T5Config). */
import { ForaError } from "../../errors.ts";

export interface T5Config {
  vocabSize: number;
  dModel: number;
  /** Width of one head. */
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEpsilon: number;
}

/** Longest input the encoder graph takes (T5's own limit; PixArt uses 120). */
export const T5_MAX_LENGTH = 512;

/** google/t5-v1_1-xxl, PixArt-alpha's text encoder (4.7 billion parameters in the encoder). */
export const T5_V1_1_XXL: T5Config = {
  vocabSize: 32128,
  dModel: 4096,
  dKv: 64,
  dFf: 10240,
  numLayers: 24,
  numHeads: 64,
  relativeAttentionNumBuckets: 32,
  relativeAttentionMaxDistance: 128,
  layerNormEpsilon: 1e-6,
};

export function parseT5Config(json: unknown, where: string): T5Config {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ForaError("bundle", `${where}: expected a JSON object`);
  const o = json as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new ForaError("bundle", `${where}: "${key}" must be a positive integer, found ${JSON.stringify(o[key])}`);
    }
    return v;
  };
  const proj = o.feed_forward_proj ?? "relu";
  if (proj !== "gated-gelu") {
    throw new ForaError(
      "bundle",
      `${where}: feed_forward_proj is ${JSON.stringify(proj)}; fora runs T5 v1.1 encoders ("gated-gelu"), as PixArt uses`,
    );
  }
  const eps = o.layer_norm_epsilon ?? 1e-6;
  if (typeof eps !== "number" || !(eps > 0)) throw new ForaError("bundle", `${where}: "layer_norm_epsilon" must be a positive number`);
  return {
    vocabSize: int("vocab_size"),
    dModel: int("d_model"),
    dKv: int("d_kv"),
    dFf: int("d_ff"),
    numLayers: int("num_layers"),
    numHeads: int("num_heads"),
    relativeAttentionNumBuckets: int("relative_attention_num_buckets", 32),
    relativeAttentionMaxDistance: int("relative_attention_max_distance", 128),
    layerNormEpsilon: eps,
  };
}

export function t5Parameters(c: T5Config): number {
  const inner = c.numHeads * c.dKv;
  const layer = 4 * c.dModel * inner + 3 * c.dModel * c.dFf + 2 * c.dModel;
  return c.vocabSize * c.dModel + c.relativeAttentionNumBuckets * c.numHeads + c.numLayers * layer + c.dModel;
}
