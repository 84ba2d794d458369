/**
 * DiT architecture and numeric conventions. The two published weight layouts
 * (facebookresearch/DiT "original" and diffusers) compute slightly different
 * functions; a config records which one its weights come from so each stays faithful.
 */
import { asObject, bool, checkTransformerShape, positiveInt } from "../config_fields.ts";
import { ForaError } from "../../errors.ts";

export type Naming = "original" | "diffusers";

export interface DitConfig {
  depth: number;
  hiddenSize: number;
  numHeads: number;
  patchSize: number;
  /** Latent side length (latent is inChannels x inputSize x inputSize). */
  inputSize: number;
  inChannels: number;
  numClasses: number;
  learnSigma: boolean;
  naming: Naming;
  /** Divisor of the sinusoid frequency exponent: 128 in DiT, 127 (half - 1) in diffusers. */
  freqDivisor: number;
  /** eps of the LayerNorm before the MLP: 1e-6 in DiT, 1e-5 in diffusers. */
  mlpNormEps: number;
}

/** Numeric conventions that follow from the naming scheme. */
export function conventions(naming: Naming): Pick<DitConfig, "freqDivisor" | "mlpNormEps"> {
  return naming === "original" ? { freqDivisor: 128, mlpNormEps: 1e-6 } : { freqDivisor: 127, mlpNormEps: 1e-5 };
}

export const TIMESTEP_FREQ_DIM = 256;
export const NORM_EPS = 1e-6;

export function outChannels(c: DitConfig): number {
  return c.learnSigma ? 2 * c.inChannels : c.inChannels;
}
export function gridSize(c: DitConfig): number {
  return c.inputSize / c.patchSize;
}
export function numTokens(c: DitConfig): number {
  return gridSize(c) ** 2;
}
export function nullClass(c: DitConfig): number {
  return c.numClasses;
}

/** Published DiT sizes (depth, hidden, heads), for `--preset` and the benchmarks. */
export const DIT_SIZES = {
  "XL": { depth: 28, hiddenSize: 1152, numHeads: 16 },
  "L": { depth: 24, hiddenSize: 1024, numHeads: 16 },
  "B": { depth: 12, hiddenSize: 768, numHeads: 12 },
  "S": { depth: 12, hiddenSize: 384, numHeads: 6 },
} as const;

/** e.g. "XL/2-256": the ImageNet class-conditional models, latent 4 x (res/8)^2. */
export function ditPreset(name: string): DitConfig {
  const m = /^(XL|L|B|S)\/(2|4|8)-(256|512)$/.exec(name);
  if (!m) {
    throw new ForaError("usage", `unknown DiT preset "${name}"; use e.g. XL/2-256, L/2-512, B/4-256, S/8-256`);
  }
  const size = DIT_SIZES[m[1] as keyof typeof DIT_SIZES];
  return checkTransformerShape({
    ...size,
    patchSize: Number(m[2]),
    inputSize: Number(m[3]) / 8,
    inChannels: 4,
    numClasses: 1000,
    learnSigma: true,
    naming: "original",
    ...conventions("original"),
  }, `preset ${name}`);
}

/** `config.json` of an original-format folder. */
export function parseOriginalConfig(json: unknown, where: string): DitConfig {
  const o = asObject(json, where);
  return checkTransformerShape({
    depth: positiveInt(o, "depth", where),
    hiddenSize: positiveInt(o, "hidden_size", where),
    numHeads: positiveInt(o, "num_heads", where),
    patchSize: positiveInt(o, "patch_size", where),
    inputSize: positiveInt(o, "input_size", where),
    inChannels: positiveInt(o, "in_channels", where),
    numClasses: positiveInt(o, "num_classes", where),
    learnSigma: bool(o, "learn_sigma", where, true),
    naming: "original",
    ...conventions("original"),
  }, where);
}

/** `transformer/config.json` of a diffusers DiT (Transformer2DModel / DiTTransformer2DModel). */
export function parseDiffusersConfig(json: unknown, where: string): DitConfig {
  const o = asObject(json, where);
  const heads = positiveInt(o, "num_attention_heads", where);
  const inChannels = positiveInt(o, "in_channels", where);
  const out = o["out_channels"] === undefined || o["out_channels"] === null ? inChannels : positiveInt(o, "out_channels", where);
  if (out !== inChannels && out !== 2 * inChannels) {
    throw new ForaError("bundle", `${where}: out_channels ${out} must equal in_channels ${inChannels} or twice it`);
  }
  const normType = o["norm_type"];
  if (normType !== undefined && normType !== "ada_norm_zero") {
    throw new ForaError("bundle", `${where}: norm_type "${normType}" is not a DiT (expected "ada_norm_zero")`);
  }
  return checkTransformerShape({
    depth: positiveInt(o, "num_layers", where),
    hiddenSize: heads * positiveInt(o, "attention_head_dim", where),
    numHeads: heads,
    patchSize: positiveInt(o, "patch_size", where),
    inputSize: positiveInt(o, "sample_size", where),
    inChannels,
    numClasses: positiveInt(o, "num_embeds_ada_norm", where),
    learnSigma: out === 2 * inChannels,
    naming: "diffusers",
    freqDivisor: 127,
    mlpNormEps: typeof o["norm_eps"] === "number" ? o["norm_eps"] as number : 1e-5,
  }, where);
}
