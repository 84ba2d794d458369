/**
 * PixArt-alpha and PixArt-Sigma's architecture (docs/design.md §2). Unlike DiT, both weight layouts
 * compute the same function: timestep frequencies exp(-ln(1e4) k / 128), LayerNorm eps 1e-6
 * everywhere, no affine. The family differs in three settings: the position table's
 * `interpolationScale`, the 1024-MS models' resolution and aspect-ratio micro-conditions, and the
 * caption length (alpha 120, Sigma 300: a property of the pipeline, not of the transformer's config).
 */
import {
  asObject,
  bool,
  checkTransformerShape,
  type ConfigObject,
  diffusersShape,
  originalShape,
  positiveInt,
  positiveNumber,
} from "../config_fields.ts";
import { ForaError } from "../../errors.ts";
import type { TransformerShape } from "../patch_grid.ts";
export type { LatentSize } from "../patch_grid.ts";

export type PixartNaming = "original" | "diffusers";

export interface PixartConfig extends TransformerShape {
  /** Width of the text encoder's output (4096 for T5 v1.1 XXL). */
  captionChannels: number;
  /** Caption length the tokenizer pads and truncates to (alpha 120, Sigma 300). */
  maxTokens: number;
  /** Positions of the 2D sin-cos table are divided by this (diffusers' `interpolation_scale`). */
  interpolationScale: number;
  /** Resolution and aspect-ratio embeddings added to the timestep embedding (1024-MS alpha models). */
  microConditions: boolean;
  naming: PixartNaming;
}

export const PIXART_FREQ_DIVISOR = 128;
export const PIXART_NORM_EPS = 1e-6;
export const PIXART_MAX_TOKENS = 120;
export const PIXART_SIGMA_MAX_TOKENS = 300;

/** PixArt-XL/2 at 256 or 512 pixels (latent 32 or 64), or the 1024-MS model, for `--preset` and the benchmark. */
export function pixartPreset(name: string): PixartConfig {
  const m = /^XL\/2-(256|512|1024-MS)$/.exec(name);
  if (!m) throw new ForaError("usage", `unknown PixArt preset "${name}"; use XL/2-256, XL/2-512 or XL/2-1024-MS`);
  const ms = m[1] === "1024-MS";
  return checkTransformerShape({
    depth: 28,
    hiddenSize: 1152,
    numHeads: 16,
    patchSize: 2,
    inputSize: ms ? 128 : Number(m[1]) / 8,
    inChannels: 4,
    captionChannels: 4096,
    learnSigma: true,
    maxTokens: PIXART_MAX_TOKENS,
    interpolationScale: ms ? 2 : 1,
    microConditions: ms,
    naming: "diffusers",
  }, `preset ${name}`);
}

/**
 * The position table's scale of a PixArt-alpha model trained at a `latentSize` latent, for
 * configs that do not say it: diffusers' PixArtTransformer2DModel takes max(sample_size // 64, 1),
 * which is what PixArt's own scripts pass as `lewei_scale` (1 for 256 and 512 px, 2 for 1024).
 */
export function defaultInterpolationScale(latentSize: number): number {
  return Math.max(Math.floor(latentSize / 64), 1);
}

/** `transformer/config.json` of a diffusers PixArtTransformer2DModel (or Transformer2DModel with ada_norm_single). */
export function parsePixartDiffusersConfig(json: unknown, where: string): PixartConfig {
  const o = asObject(json, where);
  if (o.norm_type !== "ada_norm_single") {
    throw new ForaError("bundle", `${where}: norm_type ${JSON.stringify(o.norm_type)} is not PixArt's "ada_norm_single"`);
  }
  refuseUnsupported(o, where);
  const sample = positiveInt(o, "sample_size", where);
  // diffusers' defaults when the keys are absent or null: micro-conditions for the 128-latent
  // (1024 px) models, and the table scale of the latent size
  const microConditions = o.use_additional_conditions === null
    ? sample === 128
    : bool(o, "use_additional_conditions", where, sample === 128);
  const interpolationScale = o.interpolation_scale === null || o.interpolation_scale === undefined
    ? defaultInterpolationScale(sample)
    : positiveNumber(o, "interpolation_scale", where);
  return checkMicroConditions(
    checkTransformerShape({
      ...diffusersShape(o, where),
      captionChannels: positiveInt(o, "caption_channels", where),
      maxTokens: PIXART_MAX_TOKENS,
      interpolationScale,
      microConditions,
      naming: "diffusers",
    }, where),
    where,
  );
}

/**
 * config.json next to an original-layout checkpoint (`"architecture": "pixart"`, DiT-style keys;
 * `interpolation_scale` is the original code's `lewei_scale` / `pe_interpolation`, `micro_condition`
 * its PixArtMS switch for the size embedders).
 */
export function parsePixartOriginalConfig(json: unknown, where: string): PixartConfig {
  const o = asObject(json, where);
  refuseUnsupported(o, where);
  return checkMicroConditions(
    checkTransformerShape({
      ...originalShape(o, where),
      captionChannels: positiveInt(o, "caption_channels", where),
      learnSigma: o.learn_sigma === undefined ? true : o.learn_sigma === true,
      maxTokens: o.max_tokens === undefined ? PIXART_MAX_TOKENS : positiveInt(o, "max_tokens", where),
      interpolationScale: o.interpolation_scale === undefined ? 1 : positiveNumber(o, "interpolation_scale", where),
      microConditions: bool(o, "micro_condition", where, false),
      naming: "original",
    }, where),
    where,
  );
}

/**
 * Settings of the PixArt-Sigma training code that change the network and that fora does not
 * build: key/value token compression (the 2K model's `kv_compress`, `kv_compress_config`) and
 * LayerNorm on queries and keys (`qk_norm`).
 */
const UNSUPPORTED_KEYS: Record<string, string> = {
  kv_compress: "key/value token compression",
  kv_compress_config: "key/value token compression",
  use_kv_compression: "key/value token compression",
  qk_norm: "query/key normalisation",
};

function refuseUnsupported(o: ConfigObject, where: string): void {
  for (const [key, what] of Object.entries(UNSUPPORTED_KEYS)) {
    const v = o[key];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0)) {
      throw new ForaError("bundle", `${where}: "${key}" asks for ${what}, which fora does not run; use a checkpoint trained without it`);
    }
  }
}

/** The size embedders each take a third of the width: [height, width, aspect ratio]. */
function checkMicroConditions(c: PixartConfig, where: string): PixartConfig {
  if (c.microConditions && c.hiddenSize % 3 !== 0) {
    throw new ForaError("bundle", `${where}: micro-conditions need a hidden size divisible by 3, found ${c.hiddenSize}`);
  }
  return c;
}
