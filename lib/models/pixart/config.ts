/**
 * PixArt-alpha's architecture (docs/design.md §2). Unlike DiT, both weight layouts compute the same
 * function: timestep frequencies exp(-ln(1e4) k / 128), LayerNorm eps 1e-6 everywhere, no affine.
 */
import { asObject, checkTransformerShape, diffusersShape, originalShape, positiveInt } from "../config_fields.ts";
import { ForaError } from "../../errors.ts";
import type { TransformerShape } from "../patch_grid.ts";

export type PixartNaming = "original" | "diffusers";

export interface PixartConfig extends TransformerShape {
  /** Width of the text encoder's output (4096 for T5 v1.1 XXL). */
  captionChannels: number;
  /** Caption length the tokenizer pads and truncates to (120). */
  maxTokens: number;
  naming: PixartNaming;
}

export const PIXART_FREQ_DIVISOR = 128;
export const PIXART_NORM_EPS = 1e-6;
export const PIXART_MAX_TOKENS = 120;

/** PixArt-XL/2 at 256 or 512 pixels (latent 32 or 64), for `--preset` and the benchmark. */
export function pixartPreset(name: string): PixartConfig {
  const m = /^XL\/2-(256|512)$/.exec(name);
  if (!m) throw new ForaError("usage", `unknown PixArt preset "${name}"; use XL/2-256 or XL/2-512`);
  return checkTransformerShape({
    depth: 28,
    hiddenSize: 1152,
    numHeads: 16,
    patchSize: 2,
    inputSize: Number(m[1]) / 8,
    inChannels: 4,
    captionChannels: 4096,
    learnSigma: true,
    maxTokens: PIXART_MAX_TOKENS,
    naming: "diffusers",
  }, `preset ${name}`);
}

/** `transformer/config.json` of a diffusers PixArtTransformer2DModel (or Transformer2DModel with ada_norm_single). */
export function parsePixartDiffusersConfig(json: unknown, where: string): PixartConfig {
  const o = asObject(json, where);
  if (o.norm_type !== "ada_norm_single") {
    throw new ForaError("bundle", `${where}: norm_type ${JSON.stringify(o.norm_type)} is not PixArt's "ada_norm_single"`);
  }
  const sample = positiveInt(o, "sample_size", where);
  const extra = o.use_additional_conditions ?? (sample === 128);
  if (extra) {
    throw new ForaError(
      "bundle",
      `${where}: this is a 1024-MS model (resolution and aspect-ratio micro-conditions); fora runs the 256 and 512 PixArt-alpha models`,
    );
  }
  const scale = o.interpolation_scale ?? Math.max(Math.floor(sample / 64), 1);
  if (scale !== 1) {
    throw new ForaError("bundle", `${where}: interpolation_scale ${scale} is not supported (only 1: the 256 and 512 models)`);
  }
  return checkTransformerShape({
    ...diffusersShape(o, where),
    captionChannels: positiveInt(o, "caption_channels", where),
    maxTokens: PIXART_MAX_TOKENS,
    naming: "diffusers",
  }, where);
}

/** config.json next to an original-layout checkpoint (`"architecture": "pixart"`, DiT-style keys). */
export function parsePixartOriginalConfig(json: unknown, where: string): PixartConfig {
  const o = asObject(json, where);
  return checkTransformerShape({
    ...originalShape(o, where),
    captionChannels: positiveInt(o, "caption_channels", where),
    learnSigma: o.learn_sigma === undefined ? true : o.learn_sigma === true,
    maxTokens: o.max_tokens === undefined ? PIXART_MAX_TOKENS : positiveInt(o, "max_tokens", where),
    naming: "original",
  }, where);
}
