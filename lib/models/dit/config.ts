/**
 * DiT architecture and numeric conventions. The two published weight layouts
 * (facebookresearch/DiT "original" and diffusers) compute slightly different
 * functions; a config records which one its weights come from so each stays faithful.
 */
import { asObject, bool, checkTransformerShape, diffusersShape, originalShape, positiveInt } from "../config_fields.ts";
import { ForaError } from "../../errors.ts";
import type { TransformerShape } from "../patch_grid.ts";

export type Naming = "original" | "diffusers";

export interface DitConfig extends TransformerShape {
  numClasses: number;
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

export { gridSize, numTokens, outChannels } from "../patch_grid.ts";
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
    ...originalShape(o, where),
    numClasses: positiveInt(o, "num_classes", where),
    learnSigma: bool(o, "learn_sigma", where, true),
    naming: "original",
    ...conventions("original"),
  }, where);
}

/** `transformer/config.json` of a diffusers DiT (Transformer2DModel / DiTTransformer2DModel). */
export function parseDiffusersConfig(json: unknown, where: string): DitConfig {
  const o = asObject(json, where);
  const shape = diffusersShape(o, where);
  const normType = o["norm_type"];
  if (normType !== undefined && normType !== "ada_norm_zero") {
    throw new ForaError("bundle", `${where}: norm_type "${normType}" is not a DiT (expected "ada_norm_zero")`);
  }
  return checkTransformerShape({
    ...shape,
    numClasses: positiveInt(o, "num_embeds_ada_norm", where),
    naming: "diffusers",
    freqDivisor: 127,
    mlpNormEps: typeof o["norm_eps"] === "number" ? o["norm_eps"] as number : 1e-5,
  }, where);
}
