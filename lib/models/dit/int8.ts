/**
 * What DiT's int8 graphs quantize: the GEMM work of every block, i.e. attention's q, k,
 * v and output projections and the MLP's fc1 and fc2. Everything else stays fp32: the
 * adaLN modulation (its shifts, scales and gates act on every token of the residual
 * stream), the embedders, the final layer, and attention's own products and softmax.
 */
import { type QuantizedLinear, writeQuantizedLinears } from "../../weights/quantize.ts";
import type { WeightSource } from "../../weights/source.ts";
import type { DitConfig } from "./config.ts";
import { loadDitWeights } from "./weights.ts";

/** Where `fora convert --precision int8` writes the quantized block weights, in the bundle. */
export const DIT_INT8_WEIGHTS_FILE = "weights/dit-int8.safetensors";

/** The quantized block linears, keyed by the name of the fp32 weight each replaces. */
export type DitInt8Weights = ReadonlyMap<string, QuantizedLinear>;

/** Quantizes the block linears of the checkpoint `src` into `root`/DIT_INT8_WEIGHTS_FILE (`root`: the bundle folder). */
export async function quantizeDitBlocks(root: string, src: WeightSource, cfg: DitConfig): Promise<DitInt8Weights> {
  const weights = loadDitWeights(src, cfg).blocks.flatMap((b) => [b.q, b.k, b.v, b.proj, b.fc1, b.fc2].map((l) => l.weight));
  return await writeQuantizedLinears(root, DIT_INT8_WEIGHTS_FILE, weights);
}
