/** `fora info`: what a bundle holds, for people (formatInfo) and for scripts (BundleInfo as JSON). */
import { resolve } from "node:path";
import { printable } from "../errors.ts";
import type { DitConfig, Naming } from "../models/dit/config.ts";
import { upscaleFactor } from "../models/vae/config.ts";
import type { DitConventions, Manifest, Precision, Space } from "./manifest.ts";
import { checkHashes, readManifest } from "./read.ts";

export interface GraphInfo {
  file: string;
  model: "dit" | "vae";
  /** DiT graphs: full | reuse | blocks; VAE: decoder. */
  kind: string;
  /** DiT graphs only. */
  guidance?: "cfg" | "plain";
  precision: Precision;
  attention?: "portable" | "fused";
  bytes: number;
}

export interface BundleInfo {
  bundle: string;
  format: string;
  formatVersion: number;
  foraVersion: string;
  architecture: "dit";
  sourceLayout: "diffusers" | "original";
  source: string;
  naming: Naming;
  space: Space;
  config: DitConfig;
  conventions: DitConventions;
  dit: { parameters: number; tensors: number; dtypes: string[]; weightBytes: number };
  vae: null | {
    parameters: number;
    tensors: number;
    dtypes: string[];
    weightBytes: number;
    latentChannels: number;
    outChannels: number;
    scalingFactor: number;
    /** [channels, height, width] of a decoded image. */
    imageShape: [number, number, number];
  };
  parameters: number;
  weightBytes: number;
  graphBytes: number;
  totalBytes: number;
  fileCount: number;
  graphs: GraphInfo[];
  /** Present when the sha256 of every file was re-checked. */
  verified?: boolean;
}

export async function bundleInfo(dir: string, opts: { verify?: boolean } = {}): Promise<BundleInfo> {
  const m = await readManifest(dir);
  const root = resolve(dir);
  const info = summarize(root, m);
  if (opts.verify) {
    await checkHashes(root, m);
    info.verified = true;
  }
  return info;
}

export function summarize(root: string, m: Manifest): BundleInfo {
  const size = new Map(m.files.map((f) => [f.path, f.size]));
  const bytes = (p: string) => size.get(p) ?? 0;
  const graphs: GraphInfo[] = [
    ...m.dit.graphs.map((g): GraphInfo => ({
      file: g.file,
      model: "dit",
      kind: g.kind,
      guidance: g.guidance,
      precision: g.precision,
      attention: g.attention,
      bytes: bytes(g.file),
    })),
    ...(m.vae?.graphs ?? []).map((g): GraphInfo => ({
      file: g.file,
      model: "vae",
      kind: "decoder",
      precision: g.precision,
      bytes: bytes(g.file),
    })),
  ];
  const c = m.dit.config;
  const vae = m.vae === null ? null : {
    parameters: m.vae.weights.parameters,
    tensors: m.vae.weights.tensors,
    dtypes: m.vae.weights.dtypes,
    weightBytes: m.vae.weights.bytes,
    latentChannels: m.vae.config.latentChannels,
    outChannels: m.vae.config.outChannels,
    scalingFactor: m.vae.config.scalingFactor,
    imageShape: [
      m.vae.config.outChannels,
      c.inputSize * upscaleFactor(m.vae.config),
      c.inputSize * upscaleFactor(m.vae.config),
    ] as [number, number, number],
  };
  const weightBytes = m.dit.weights.bytes + (vae?.weightBytes ?? 0);
  return {
    bundle: root,
    format: m.format,
    formatVersion: m.formatVersion,
    foraVersion: m.foraVersion,
    architecture: m.architecture,
    sourceLayout: m.source.layout,
    source: m.source.path,
    naming: m.dit.naming,
    space: m.space,
    config: c,
    conventions: m.dit.conventions,
    dit: {
      parameters: m.dit.weights.parameters,
      tensors: m.dit.weights.tensors,
      dtypes: m.dit.weights.dtypes,
      weightBytes: m.dit.weights.bytes,
    },
    vae,
    parameters: m.dit.weights.parameters + (vae?.parameters ?? 0),
    weightBytes,
    graphBytes: graphs.reduce((n, g) => n + g.bytes, 0),
    totalBytes: m.files.reduce((n, f) => n + f.size, 0),
    fileCount: m.files.length + 1,
    graphs,
  };
}

export function formatInfo(i: BundleInfo): string {
  const c = i.config;
  const rows: [string, string][] = [
    ["bundle", i.bundle],
    ["format", `${i.format} v${i.formatVersion}, written by fora ${i.foraVersion}`],
    ["model", `DiT, ${i.naming} weights (converted from ${i.source})`],
    ["architecture", `depth ${c.depth}, hidden ${c.hiddenSize}, ${c.numHeads} heads, patch ${c.patchSize}`],
    [
      "input",
      `${i.space} ${c.inChannels} x ${c.inputSize} x ${c.inputSize} -> ${i.conventions.tokens} tokens; ` +
      `${c.numClasses} classes (null class ${i.conventions.nullClass})` +
      (c.learnSigma ? `; learned sigma (${i.conventions.outChannels} output channels)` : ""),
    ],
    [
      "DiT weights",
      `${count(i.dit.parameters)} parameters in ${i.dit.tensors} tensors, ${i.dit.dtypes.join("/")}, ${bytes(i.dit.weightBytes)}`,
    ],
    ["VAE", vaeLine(i)],
    ["weights", `${bytes(i.weightBytes)} in weights/`],
    ["graphs", `${i.graphs.length} ONNX files, ${bytes(i.graphBytes)}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = rows.map(([k, v]) => k.padEnd(width) + v);
  const fileWidth = Math.max(...i.graphs.map((g) => g.file.length)) + 2;
  for (const g of i.graphs) {
    const what = g.model === "dit" ? `${g.kind} step, ${g.guidance}, ${g.attention} attention` : "VAE decoder";
    lines.push(`  ${g.file.padEnd(fileWidth)}${bytes(g.bytes).padStart(9)}  ${what}`);
  }
  lines.push(`${"total".padEnd(width)}${bytes(i.totalBytes)} in ${i.fileCount} files`);
  if (i.verified) lines.push(`${"verified".padEnd(width)}every file matches its sha256 in manifest.json`);
  // The manifest's strings (fora version, source path, file names) come from a file: escape their control characters.
  return lines.map(printable).join("\n");
}

function vaeLine(i: BundleInfo): string {
  if (i.vae === null) {
    return i.space === "pixel"
      ? "none (pixel-space model: outputs are images)"
      : "none (outputs are latents; this bundle cannot decode them to images)";
  }
  const v = i.vae;
  return `${v.latentChannels} latent channels -> ${v.imageShape.join(" x ")} image, latents / ${v.scalingFactor}; ` +
    `${count(v.parameters)} parameters, ${v.dtypes.join("/")}, ${bytes(v.weightBytes)}`;
}

/** 675129632 -> "675.1M (675,129,632)". */
export function count(n: number): string {
  const exact = n.toLocaleString("en-US");
  if (n < 1000) return exact;
  const [value, unit] = n >= 1e9 ? [n / 1e9, "G"] : n >= 1e6 ? [n / 1e6, "M"] : [n / 1e3, "K"];
  return `${value.toFixed(1)}${unit} (${exact})`;
}

/** Decimal units, as file managers show them. */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const [value, unit] = n >= 1e9 ? [n / 1e9, "GB"] : n >= 1e6 ? [n / 1e6, "MB"] : [n / 1e3, "kB"];
  return `${value.toFixed(1)} ${unit}`;
}
