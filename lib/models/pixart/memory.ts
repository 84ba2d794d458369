/**
 * How much host memory PixArt sampling needs on the CPU execution provider, estimated before
 * anything loads, so that a configuration that cannot fit is refused with the size it needs
 * instead of failing (or swapping) minutes into loading.
 *
 * Resident weights, as measured with bench/pixart_memory_cpu.ts (bench/RESULTS.md): ONNX
 * Runtime's CPU EP holds every weight at 4 bytes, whatever the graph's precision (x86 has no
 * fp16 GEMM: the casts of an fp16 graph are folded to fp32 at load like those of an fp32 graph
 * over fp16 files). Over fp16 or bf16 files it holds more than that: PixArt-XL/2's transformer
 * took 1.9 times the room of the same weights from an fp32 file (the folded fp32 copy and the
 * file's values both stay), which FP16_FILE_BYTES states per parameter.
 *
 * Working memory: the full step's attention scores and softmax (the step graphs run without ONNX
 * Runtime's CPU arena, which would otherwise keep them for every block), the A_k, X_k, M_k it
 * keeps for R_j, or the VAE decoder's full-resolution activations. Measured for
 * PixArt-XL-2-1024-MS with T5-XXL (fp32 files, one sample with guidance): encoding 21.3 GiB,
 * sampling 9.7 GiB at the peak; this estimate says 22.6 GiB and 10.3 GiB.
 *
 * The phases: the T5 encoder runs once per prompt, the transformer's steps and the VAE decoder
 * after it. With everything open at once the peak is the sum of all weights and the largest
 * working set; when that does not fit, the encoder is closed after each prompt (reloaded at the
 * next), and the peak is the larger of the encoding phase (all weights) and the sampling phase
 * (transformer, VAE and their working memory).
 */
import { ForaError } from "../../errors.ts";
import type { PixartManifest } from "../../bundle/pixart_manifest.ts";
import { TIMESTEP_FREQ_DIM } from "../dit/config.ts";
import type { T5Config } from "../t5/config.ts";
import { upscaleFactor, type VaeConfig } from "../vae/config.ts";
import type { PixartConfig } from "./config.ts";
import { type LatentSize, numTokens, outChannels, trainedLatent } from "../patch_grid.ts";

/** Bytes per parameter the CPU EP holds for weights from fp32 files and from fp16 / bf16 files (measured). */
export const F32_FILE_BYTES = 4.4;
export const FP16_FILE_BYTES = 7.8;
/** ONNX Runtime, Deno and the graphs themselves. */
const BASE_BYTES = 0.4 * 2 ** 30;

export interface WeightsSummary {
  parameters: number;
  /** Safetensors dtypes of the files, e.g. ["F16"]. */
  dtypes: string[];
}

export interface MemoryInputs {
  transformer: { config: PixartConfig; weights: WeightsSummary };
  t5: { config: T5Config; weights: WeightsSummary };
  vae: null | { config: VaeConfig; weights: WeightsSummary };
  batch: number;
  captionTokens: number;
  /** The latent sampled (--width / --height); the trained one unless given. */
  latent?: LatentSize;
}

export interface MemoryPart {
  name: string;
  bytes: number;
}

export interface MemoryPlan {
  /** Close the T5 session after each prompt (the sampling phase then runs without it). */
  releaseEncoder: boolean;
  bytes: number;
  parts: MemoryPart[];
}

function weightBytes(w: WeightsSummary): number {
  const half = w.dtypes.some((d) => d === "F16" || d === "BF16");
  return w.parameters * (half ? FP16_FILE_BYTES : F32_FILE_BYTES);
}

/** Weights, the working sets of the two phases, and the peak with and without closing the encoder. */
export function estimatePixartMemory(m: MemoryInputs): { parts: MemoryPart[]; together: number; phased: number } {
  const c = m.transformer.config, D = c.hiddenSize, T = numTokens(c, m.latent), B2 = 2 * m.batch, f32 = 4;
  const t5 = weightBytes(m.t5.weights), transformer = weightBytes(m.transformer.weights), vae = m.vae ? weightBytes(m.vae.weights) : 0;
  // scores and softmax of one self-attention, the A_k, X_k, M_k every block keeps for R_j, the MLP's hidden tensor
  const fullStep = (2 * B2 * c.numHeads * T * T + 3 * c.depth * B2 * T * D + 2 * B2 * T * 4 * D) * f32;
  let vaeWork = 0;
  if (m.vae) {
    const { height, width } = m.latent ?? trainedLatent(c);
    const latentPixels = height * width, pixels = latentPixels * upscaleFactor(m.vae.config) ** 2;
    // a few full-resolution tensors of the first level's width, and the mid-block attention at latent size
    vaeWork = m.batch * (4 * m.vae.config.blockOutChannels[0] * pixels + 2 * latentPixels * latentPixels) * f32;
  }
  const t = m.t5.config, n = m.captionTokens;
  const t5Work = n * (2 * t.dFf + 4 * t.dModel + t.numHeads * n) * f32;
  const sampling = Math.max(fullStep, vaeWork);
  const parts = [
    { name: "T5 encoder", bytes: t5 },
    { name: "transformer", bytes: transformer },
    { name: "VAE decoder", bytes: vae },
    { name: "working memory", bytes: Math.max(sampling, t5Work) },
    { name: "runtime", bytes: BASE_BYTES },
  ].filter((p) => p.bytes > 0);
  return {
    parts,
    together: t5 + transformer + vae + Math.max(sampling, t5Work) + BASE_BYTES,
    phased: Math.max(t5 + transformer + vae + t5Work, transformer + vae + sampling) + BASE_BYTES,
  };
}

/**
 * Everything open at once when it fits in `limitBytes` (the machine's memory by default), else the
 * encoder closed between prompts when that fits; otherwise a one-line refusal naming the size needed.
 */
export function planPixartMemory(where: string, m: MemoryInputs, limitBytes = Deno.systemMemoryInfo().total): MemoryPlan {
  const e = estimatePixartMemory(m);
  if (e.together <= limitBytes) return { releaseEncoder: false, bytes: e.together, parts: e.parts };
  if (e.phased <= limitBytes) return { releaseEncoder: true, bytes: e.phased, parts: e.parts };
  const half = [m.t5, m.transformer].some((c) => c.weights.dtypes.some((d) => d === "F16" || d === "BF16"));
  throw new ForaError(
    "runtime",
    `${where}: sampling a batch of ${m.batch} needs about ${formatGiB(e.phased)} of memory on the CPU (${
      e.parts.map((p) => `${p.name} ${formatGiB(p.bytes)}`).join(", ")
    }) but this machine has ${formatGiB(limitBytes)}; ${
      half ? "fp16 weights take about twice their size once loaded (convert from fp32 files), " : ""
    }use a smaller --batch or a machine with more memory`,
  );
}

export function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/** Elements of a PixArt transformer's weights, from its config (the benchmark's random models). */
export function pixartParameters(c: PixartConfig): number {
  const D = c.hiddenSize, lin = (o: number, i: number) => o * i + o, pp = c.patchSize ** 2;
  const block = 6 * D + 7 * lin(D, D) + lin(4 * D, D) + lin(D, 4 * D);
  const size = c.microConditions ? 2 * (lin(D / 3, TIMESTEP_FREQ_DIM) + lin(D / 3, D / 3)) : 0;
  return lin(D, c.inChannels * pp) + lin(D, TIMESTEP_FREQ_DIM) + lin(D, D) + lin(6 * D, D) + lin(D, c.captionChannels) + lin(D, D) +
    size + c.depth * block + 2 * D + lin(pp * outChannels(c), D);
}

/** The estimate's inputs for a bundle (one sample: the batch size is known only per request). */
export function pixartMemoryInputs(m: PixartManifest, batch = 1, latent?: LatentSize): MemoryInputs {
  return {
    latent,
    transformer: { config: m.pixart.config, weights: m.pixart.weights },
    t5: { config: m.textEncoder.config, weights: m.textEncoder.weights },
    vae: m.vae && { config: m.vae.config, weights: m.vae.weights },
    batch,
    captionTokens: m.pixart.conventions.maxTokens,
  };
}
