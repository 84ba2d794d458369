/**
 * PixArt-alpha and PixArt-Sigma bundles (architecture "pixart"): the manifest's types and
 * where its graphs are. pixart_source.ts reads the diffusers pipeline folder they come from,
 * pixart_convert.ts writes them, check.ts validates their manifests.
 *
 *   manifest.json
 *   pixart-text.{fp32,fp16}.onnx                         caption projection + every block's K/V
 *   pixart-{full,reuse,full_xr,reuse_xr,blocks}-{cfg,plain}.{fp32,fp16}.onnx
 *   t5-encoder.{fp32,fp16}.onnx                           the T5 v1.1 encoder
 *   vae-decoder.{fp32,fp16}.onnx
 *   tokenizer/{spiece.model,tokenizer.json} (+ tokenizer_config.json)   copied, whichever exist
 *   weights/{pixart,t5,vae}/*.safetensors                 hard-linked (or copied), never rewritten
 *
 * The unconditional input of classifier-free guidance is recorded in the manifest: the
 * learned null caption where the transformer's weights carry it (original checkpoints, read
 * from weights/pixart at run time), T5("") with its own length otherwise (diffusers).
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";
import type { PixartConfig, PixartNaming } from "../models/pixart/config.ts";
import type { PixartGraphKind } from "../models/pixart/graphs.ts";
import type { T5Config } from "../models/t5/config.ts";
import type { VaeConfig } from "../models/vae/config.ts";
import type { DiffusersDdimConfig } from "../samplers/diffusers_schedule.ts";
import type { AttentionKind, BUNDLE_FORMAT, FileEntry, FloatPrecision, Guidance, VaeGraphEntry, WeightsEntry } from "./manifest.ts";

export const PIXART_ARCHITECTURE = "pixart";
export const TOKENIZER_FOLDER = "tokenizer";

export type Unconditional = "null-caption" | "empty-prompt";
export const PIXART_FAMILIES = ["alpha", "sigma"] as const;
export type PixartFamily = typeof PIXART_FAMILIES[number];

export interface PixartGraphEntry {
  file: string;
  kind: PixartGraphKind;
  /** null for the text graph (the same with and without guidance). */
  guidance: Guidance | null;
  precision: FloatPrecision;
  attention: AttentionKind;
}

export interface PixartManifest {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  foraVersion: string;
  architecture: "pixart";
  source: { layout: "diffusers"; path: string };
  space: "latent";
  pixart: {
    naming: PixartNaming;
    config: PixartConfig;
    conventions: {
      timestepFreqDim: number;
      freqDivisor: number;
      normEps: number;
      outChannels: number;
      tokens: number;
      /** Caption length of the tokenizer call (padding and truncation). */
      maxTokens: number;
      /** The unconditional caption of classifier-free guidance. */
      unconditional: Unconditional;
      /** PixArt-alpha or PixArt-Sigma (from the pipeline class). */
      family: PixartFamily;
      /** Pixels per latent pixel: the micro-conditions' resolution is the latent size times this. */
      vaeScaleFactor: number;
    };
    weights: WeightsEntry;
    graphs: PixartGraphEntry[];
    /** The pipeline's scheduler config as diffusers' DDIMScheduler reads it: what `--sampler ddim` follows. */
    scheduler: DiffusersDdimConfig;
  };
  textEncoder: {
    config: T5Config;
    weights: WeightsEntry;
    graphs: { file: string; precision: FloatPrecision }[];
    /** Bundle folder holding spiece.model and/or tokenizer.json. */
    tokenizer: string;
  };
  vae: null | { config: VaeConfig; weights: WeightsEntry; graphs: VaeGraphEntry[] };
  files: FileEntry[];
}
export function pixartGraphFile(kind: PixartGraphKind, guidance: Guidance | null, precision: FloatPrecision): string {
  return kind === "text" ? `pixart-text.${precision}.onnx` : `pixart-${kind}-${guidance}.${precision}.onnx`;
}

export function t5GraphFile(precision: FloatPrecision): string {
  return `t5-encoder.${precision}.onnx`;
}
/** Absolute path of the PixArt graph with these properties, or a ForaError naming what the bundle has. */
export function pixartGraphPath(
  dir: string,
  m: PixartManifest,
  want: { kind: PixartGraphKind; guidance: Guidance; precision: FloatPrecision },
): string {
  const g = m.pixart.graphs.find((e) =>
    e.kind === want.kind && e.precision === want.precision && (e.kind === "text" || e.guidance === want.guidance)
  );
  if (!g) {
    throw new ForaError(
      "bundle",
      `${dir}: bundle has no ${want.kind}/${want.guidance}/${want.precision} PixArt graph (it has ${
        m.pixart.graphs.map((e) => e.file).join(", ")
      }); re-run fora convert`,
    );
  }
  return join(dir, g.file);
}

export function t5GraphPath(dir: string, m: PixartManifest, precision: FloatPrecision): string {
  const g = m.textEncoder.graphs.find((e) => e.precision === precision);
  if (!g) throw new ForaError("bundle", `${dir}: bundle has no ${precision} T5 encoder graph; re-run fora convert`);
  return join(dir, g.file);
}
