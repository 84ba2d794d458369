/**
 * The T5 v1.1 encoder as one ONNX graph: input_ids int64 [batch, tokens] (real tokens only:
 * no padding, so no mask; masked attention over a padded caption gives the same outputs at
 * the real positions) -> last_hidden_state float32 [batch, tokens, d_model].
 *
 * Per layer: h += o(attn(rms(h))); h += wo(gelu_tanh(wi_0(rms(h))) * wi_1(rms(h))); then a final
 * RMS norm. In the fp16 variant the residual stream, the norms, the softmax, the gated product
 * and the `wo` projection stay in float32 (transformers keeps `wo` in fp32 for the same reason:
 * T5 v1.1's feed-forward outputs exceed fp16's range); the other matrix products run in fp16.
 */
import { type ComputeType, GraphBuilder, type GraphData, type Value } from "../../onnx/builder.ts";
import type { WeightSource } from "../../weights/source.ts";
import { geluTanh } from "../../../kernels/activations.ts";
import { linear } from "../../../kernels/linear.ts";
import { rmsNorm } from "../../../kernels/rms_norm.ts";
import { relativePositionBias, relativePositionBuckets, t5AttentionCore } from "../../../kernels/t5_attention.ts";
import { T5_MAX_LENGTH, type T5Config } from "./config.ts";
import { loadT5Weights } from "./weights.ts";

export function buildT5EncoderGraph(src: WeightSource, c: T5Config, computeType: ComputeType): GraphData {
  const w = loadT5Weights(src, c);
  const g = new GraphBuilder("t5_encoder", computeType);
  const ids = g.input("input_ids", "int64", ["batch", "tokens"]);
  const W = (t: Parameters<GraphBuilder["weight"]>[0]) => g.weight(t);
  const noBias = (t: Parameters<GraphBuilder["weight"]>[0]) => ({ weight: W(t), bias: null });
  let h: Value = g.scope("embed_tokens", () => g.cast(g.gather(W(w.embedding), ids, 0), "float32"));
  const buckets = relativePositionBuckets(T5_MAX_LENGTH, c.relativeAttentionNumBuckets, c.relativeAttentionMaxDistance);
  const bias = relativePositionBias(g, ids, W(w.relativeBias), buckets, T5_MAX_LENGTH);
  w.layers.forEach((l, i) =>
    g.scope(`block.${i}`, () => {
      h = g.scope("attention", () => {
        const x = g.toCompute(rmsNorm(g, h, W(l.attnNorm), c.layerNormEpsilon));
        const core = t5AttentionCore(g, linear(g, x, noBias(l.q)), linear(g, x, noBias(l.k)), linear(g, x, noBias(l.v)), bias, c.numHeads);
        return g.add(h, g.cast(linear(g, core, noBias(l.o)), "float32"));
      });
      h = g.scope("feed_forward", () => {
        const x = g.toCompute(rmsNorm(g, h, W(l.ffNorm), c.layerNormEpsilon));
        const gated = g.mul(g.cast(geluTanh(g, linear(g, x, noBias(l.wi0))), "float32"), g.cast(linear(g, x, noBias(l.wi1)), "float32"));
        const wo = { weight: g.cast(W(l.wo), "float32"), bias: null };
        return g.add(h, linear(g, gated, wo));
      });
    })
  );
  g.output(rmsNorm(g, h, W(w.finalNorm), c.layerNormEpsilon), "last_hidden_state");
  return g.data();
}
