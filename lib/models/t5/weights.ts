/**
 * T5 encoder weights in transformers' names (T5EncoderModel or the encoder half of a
 * T5 checkpoint). The token table is `shared.weight` or `encoder.embed_tokens.weight`
 * (tied: a checkpoint may hold either); the relative position bias lives in block 0 only.
 */
import type { ExternalTensor } from "../../onnx/builder.ts";
import type { WeightSource } from "../../weights/source.ts";
import { ForaError } from "../../errors.ts";
import type { T5Config } from "./config.ts";

export interface T5LayerWeights {
  attnNorm: ExternalTensor;
  q: ExternalTensor;
  k: ExternalTensor;
  v: ExternalTensor;
  o: ExternalTensor;
  ffNorm: ExternalTensor;
  wi0: ExternalTensor;
  wi1: ExternalTensor;
  wo: ExternalTensor;
}

export interface T5Weights {
  embedding: ExternalTensor;
  relativeBias: ExternalTensor;
  layers: T5LayerWeights[];
  finalNorm: ExternalTensor;
}

export function loadT5Weights(src: WeightSource, c: T5Config): T5Weights {
  const D = c.dModel, inner = c.numHeads * c.dKv;
  const table = ["shared.weight", "encoder.embed_tokens.weight"].find((n) => src.has(n));
  if (!table) {
    throw new ForaError(
      "weights",
      `${src.origin}: no token embedding ("shared.weight" or "encoder.embed_tokens.weight"); is this a T5 encoder?`,
    );
  }
  const rows = src.get(table).shape[0];
  if (rows < c.vocabSize) {
    throw new ForaError("weights", `${src.origin}: "${table}" has ${rows} rows, the config's vocabulary ${c.vocabSize}`);
  }
  const layer = (i: number): T5LayerWeights => {
    const p = `encoder.block.${i}.layer`;
    return {
      attnNorm: src.get(`${p}.0.layer_norm.weight`, [D]),
      q: src.get(`${p}.0.SelfAttention.q.weight`, [inner, D]),
      k: src.get(`${p}.0.SelfAttention.k.weight`, [inner, D]),
      v: src.get(`${p}.0.SelfAttention.v.weight`, [inner, D]),
      o: src.get(`${p}.0.SelfAttention.o.weight`, [D, inner]),
      ffNorm: src.get(`${p}.1.layer_norm.weight`, [D]),
      wi0: src.get(`${p}.1.DenseReluDense.wi_0.weight`, [c.dFf, D]),
      wi1: src.get(`${p}.1.DenseReluDense.wi_1.weight`, [c.dFf, D]),
      wo: src.get(`${p}.1.DenseReluDense.wo.weight`, [D, c.dFf]),
    };
  };
  return {
    embedding: src.get(table, [rows, D]),
    relativeBias: src.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", [
      c.relativeAttentionNumBuckets,
      c.numHeads,
    ]),
    layers: Array.from({ length: c.numLayers }, (_, i) => layer(i)),
    finalNorm: src.get("encoder.final_layer_norm.weight", [D]),
  };
}
