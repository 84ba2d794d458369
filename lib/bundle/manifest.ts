/**
 * A bundle is a folder that `fora convert` writes and every other command reads:
 *
 *   manifest.json                    written last: its presence marks a complete bundle
 *   dit-{full,reuse,blocks,...}-{cfg,plain}.{fp32,fp16,int8}.onnx
 *   vae-decoder.{fp32,fp16}.onnx     only when the model has a VAE (int8 runs decode in fp32)
 *   weights/dit/*.safetensors        the checkpoint, hard-linked (or copied), never rewritten
 *   weights/dit-int8.safetensors     int8 bundles: the quantized block linears (lib/models/dit/int8.ts)
 *   weights/vae/*.safetensors
 *
 * The .onnx files reference tensors inside weights/ by relative path and byte offset, so
 * they must stay in the folder that holds weights/. The manifest records everything a
 * reader needs (architecture, config, conventions, graph table) and every file with its
 * size and sha256. This module holds what a manifest is (the types) and where its graphs
 * are (the file names); check.ts says which manifests are valid and read.ts reads them,
 * refusing a bundle whose files are missing, resized, or point outside the folder.
 * PixArt bundles: pixart_manifest.ts.
 */
import { join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import type { DitConfig, Naming } from "../models/dit/config.ts";
import type { DitGraphKind } from "../models/dit/graphs.ts";
import type { VaeConfig } from "../models/vae/config.ts";

export const BUNDLE_FORMAT = "fora-bundle";
export const BUNDLE_FORMAT_VERSION = 1;
export const MANIFEST_FILE = "manifest.json";

/** The precisions of floating-point graphs; every model part has them. */
export type FloatPrecision = "fp32" | "fp16";
/** int8: DiT graphs whose block linears run in int8 on the CPU; the VAE stays fp32. */
export type Precision = FloatPrecision | "int8";
export type Guidance = "cfg" | "plain";
export type Space = "latent" | "pixel";
export type AttentionKind = "portable" | "fused";

export const DIT_GRAPH_KINDS: readonly DitGraphKind[] = ["full", "reuse", "blocks", "partial_full", "partial_reuse", "probe"];
export const GUIDANCES: readonly Guidance[] = ["cfg", "plain"];
export const FLOAT_PRECISIONS: readonly FloatPrecision[] = ["fp32", "fp16"];
export const PRECISIONS: readonly Precision[] = ["fp32", "fp16", "int8"];

/** The precision of the graphs that int8 leaves in floating point (the VAE decoder). */
export function floatPrecision(p: Precision): FloatPrecision {
  return p === "int8" ? "fp32" : p;
}

export interface FileEntry {
  /** Relative to the bundle folder, "/"-separated. */
  path: string;
  size: number;
  sha256: string;
}

export interface WeightsEntry {
  /** Bundle-relative paths of the safetensors files. */
  files: string[];
  /** Safetensors dtypes found in them, e.g. ["F32"]. */
  dtypes: string[];
  tensors: number;
  /** Elements over all tensors (fixed buffers such as a stored pos_embed included). */
  parameters: number;
  /** Bytes of the files. */
  bytes: number;
}

export interface DitGraphEntry {
  file: string;
  kind: DitGraphKind;
  guidance: Guidance;
  precision: Precision;
  attention: AttentionKind;
}

export interface VaeGraphEntry {
  file: string;
  precision: FloatPrecision;
  /** Static latent size the decoder was built for (batch is dynamic). */
  latentSize: [number, number];
}

/** Numbers a sampler needs besides the config; all follow from config + naming. */
export interface DitConventions {
  timestepFreqDim: number;
  /** Sinusoid frequency exponent divisor: 128 original, 127 diffusers. */
  freqDivisor: number;
  /** LayerNorm eps of the attention-side norms and the final layer. */
  normEps: number;
  /** LayerNorm eps before the MLP: 1e-6 original, 1e-5 diffusers. */
  mlpNormEps: number;
  /** Label used for the unconditional half of classifier-free guidance. */
  nullClass: number;
  outChannels: number;
  tokens: number;
}

export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  formatVersion: number;
  foraVersion: string;
  architecture: "dit";
  source: { layout: "diffusers" | "original"; path: string };
  space: Space;
  dit: {
    /** Class names, index = class id (`--class NAME`); null when the source had none. */
    classNames: string[] | null;
    naming: Naming;
    config: DitConfig;
    conventions: DitConventions;
    weights: WeightsEntry;
    graphs: DitGraphEntry[];
  };
  /** null: the model has no VAE (pixel-space, or a latent model shipped without one). */
  vae: null | {
    config: VaeConfig;
    weights: WeightsEntry;
    graphs: VaeGraphEntry[];
  };
  /** Every file of the bundle except manifest.json itself. */
  files: FileEntry[];
}

export function ditGraphFile(kind: DitGraphKind, guidance: Guidance, precision: Precision): string {
  return `dit-${kind}-${guidance}.${precision}.onnx`;
}

/** The VAE decoder a run at `precision` uses. */
export function vaeGraphFile(precision: Precision): string {
  return `vae-decoder.${floatPrecision(precision)}.onnx`;
}

/** Absolute path of the DiT graph with these properties, or a ForaError naming what the bundle has. */
export function ditGraphPath(
  dir: string,
  m: Manifest,
  want: { kind: DitGraphKind; guidance: Guidance; precision: Precision },
): string {
  const g = m.dit.graphs.find((e) => e.kind === want.kind && e.guidance === want.guidance && e.precision === want.precision);
  if (!g) {
    const precisions = PRECISIONS.filter((p) => m.dit.graphs.some((e) => e.precision === p));
    if (!precisions.includes(want.precision)) {
      throw new ForaError(
        "bundle",
        `${dir}: bundle has no ${want.precision} DiT graphs (it has ${precisions.join(", ")}); convert the model again with ` +
          `fora convert ${m.source.path} NEW_BUNDLE --precision ${[...precisions, want.precision].join(",")}`,
      );
    }
    const have = m.dit.graphs.map((e) => e.file).join(", ");
    throw new ForaError(
      "bundle",
      `${dir}: bundle has no ${want.kind}/${want.guidance}/${want.precision} DiT graph (it has ${have}); re-run fora convert`,
    );
  }
  return join(resolve(dir), g.file);
}
