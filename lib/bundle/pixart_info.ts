/** `fora info` for PixArt bundles (alpha and Sigma): the transformer, the T5 encoder, the VAE and the graph files. */
import { resolve } from "node:path";
import { printable } from "../errors.ts";
import { t5Parameters } from "../models/t5/config.ts";
import { bytes, count } from "./info.ts";
import { checkHashes } from "./read.ts";
import type { PixartManifest } from "./pixart_manifest.ts";

export interface PixartBundleInfo {
  bundle: string;
  architecture: "pixart";
  foraVersion: string;
  source: string;
  naming: string;
  config: PixartManifest["pixart"]["config"];
  conventions: PixartManifest["pixart"]["conventions"];
  /** What `--sampler ddim` follows (the pipeline's scheduler config). */
  scheduler: PixartManifest["pixart"]["scheduler"];
  transformer: { parameters: number; dtypes: string[]; weightBytes: number };
  textEncoder: { layers: number; dModel: number; parameters: number; dtypes: string[]; weightBytes: number };
  vae: null | { parameters: number; weightBytes: number; scalingFactor: number };
  graphs: { file: string; bytes: number }[];
  totalBytes: number;
  fileCount: number;
  verified?: boolean;
}

export async function pixartInfo(dir: string, m: PixartManifest, opts: { verify?: boolean } = {}): Promise<PixartBundleInfo> {
  const root = resolve(dir);
  const size = new Map(m.files.map((f) => [f.path, f.size]));
  const info: PixartBundleInfo = {
    bundle: root,
    architecture: "pixart",
    foraVersion: m.foraVersion,
    source: m.source.path,
    naming: m.pixart.naming,
    config: m.pixart.config,
    conventions: m.pixart.conventions,
    scheduler: m.pixart.scheduler,
    transformer: { parameters: m.pixart.weights.parameters, dtypes: m.pixart.weights.dtypes, weightBytes: m.pixart.weights.bytes },
    textEncoder: {
      layers: m.textEncoder.config.numLayers,
      dModel: m.textEncoder.config.dModel,
      parameters: m.textEncoder.weights.parameters || t5Parameters(m.textEncoder.config),
      dtypes: m.textEncoder.weights.dtypes,
      weightBytes: m.textEncoder.weights.bytes,
    },
    vae: m.vae && { parameters: m.vae.weights.parameters, weightBytes: m.vae.weights.bytes, scalingFactor: m.vae.config.scalingFactor },
    graphs: [...m.pixart.graphs, ...m.textEncoder.graphs, ...(m.vae?.graphs ?? [])].map((g) => ({
      file: g.file,
      bytes: size.get(g.file) ?? 0,
    })),
    totalBytes: m.files.reduce((n, f) => n + f.size, 0),
    fileCount: m.files.length + 1,
  };
  if (opts.verify) {
    await checkHashes(root, m);
    info.verified = true;
  }
  return info;
}

export function formatPixartInfo(i: PixartBundleInfo): string {
  const c = i.config;
  const rows: [string, string][] = [
    ["bundle", i.bundle],
    ["model", `PixArt-${i.conventions.family}, ${i.naming} weights (converted from ${i.source}), written by fora ${i.foraVersion}`],
    [
      "architecture",
      `depth ${c.depth}, hidden ${c.hiddenSize}, ${c.numHeads} heads, patch ${c.patchSize}; captions ${c.maxTokens} tokens x ${c.captionChannels}; ` +
      `positions / ${c.interpolationScale}${
        c.microConditions ? `; micro-conditions (resolution = latent x ${i.conventions.vaeScaleFactor})` : ""
      }`,
    ],
    [
      "input",
      `latent ${c.inChannels} x ${c.inputSize} x ${c.inputSize} -> ${i.conventions.tokens} tokens; unconditional caption: ${i.conventions.unconditional}`,
    ],
    ["DDIM", describeDdim(i.scheduler)],
    [
      "transformer",
      `${count(i.transformer.parameters)} parameters, ${i.transformer.dtypes.join("/")}, ${bytes(i.transformer.weightBytes)}`,
    ],
    [
      "text encoder",
      `T5 v1.1, ${i.textEncoder.layers} layers x ${i.textEncoder.dModel}, ${count(i.textEncoder.parameters)} parameters, ${
        bytes(i.textEncoder.weightBytes)
      }`,
    ],
    [
      "VAE",
      i.vae
        ? `${count(i.vae.parameters)} parameters, latents / ${i.vae.scalingFactor}, ${bytes(i.vae.weightBytes)}`
        : "none (outputs are latents)",
    ],
    ["graphs", `${i.graphs.length} ONNX files, ${bytes(i.graphs.reduce((n, g) => n + g.bytes, 0))}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = rows.map(([k, v]) => k.padEnd(width) + v);
  const fw = Math.max(...i.graphs.map((g) => g.file.length)) + 2;
  for (const g of i.graphs) lines.push(`  ${g.file.padEnd(fw)}${bytes(g.bytes).padStart(9)}`);
  lines.push(`${"total".padEnd(width)}${bytes(i.totalBytes)} in ${i.fileCount} files`);
  if (i.verified) lines.push(`${"verified".padEnd(width)}every file matches its sha256 in manifest.json`);
  // The manifest's strings (fora version, source path, file names) come from a file: escape their control characters.
  return lines.map(printable).join("\n");
}

/** The scheduler config's DDIM in one line, as diffusers' DDIMScheduler runs it. */
function describeDdim(d: PixartBundleInfo["scheduler"]): string {
  const offset = d.timestepSpacing === "leading" && d.stepsOffset !== 0 ? ` + ${d.stepsOffset}` : "";
  return `${d.betaSchedule} betas ${d.betaStart}..${d.betaEnd} over ${d.numTrainTimesteps} steps, "${d.timestepSpacing}" timesteps${offset}, ` +
    `x0 ${d.clipSample ? `clipped to +-${d.clipSampleRange}` : "not clipped"}, last step to ${
      d.setAlphaToOne ? "alpha_cumprod 1" : "alpha_cumprod[0]"
    } (diffusers' DDIMScheduler)`;
}
