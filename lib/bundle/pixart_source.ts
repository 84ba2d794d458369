/**
 * The diffusers PixArt pipeline folder `fora convert` reads (`transformer/`, `text_encoder/`,
 * `tokenizer/`, `vae/`, `scheduler/`, `model_index.json`). The pipeline class fixes the
 * caption length (PixArtSigmaPipeline 300 tokens, PixArtAlphaPipeline 120); the VAE's config
 * its scaling factor and, for the 1024-MS micro-conditions, the pixels per latent.
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";
import { type Checkpoint, loadCheckpoint } from "../weights/checkpoint.ts";
import { parseVaeConfig, type VaeConfig } from "../models/vae/config.ts";
import { parseT5Config, type T5Config } from "../models/t5/config.ts";
import { parsePixartDiffusersConfig, PIXART_MAX_TOKENS, PIXART_SIGMA_MAX_TOKENS, type PixartConfig } from "../models/pixart/config.ts";
import { detectPixartNaming, refuseUnsupportedTensors } from "../models/pixart/weights.ts";
import { loadT5Tokenizer } from "../text/tokenizer.ts";
import type { PixartFamily } from "./pixart_manifest.ts";
import { readJson } from "./source.ts";
import { readPipelineScheduler } from "./scheduler_config.ts";
import type { DiffusersDdimConfig } from "../samplers/diffusers_schedule.ts";

export interface PixartSource {
  root: string;
  family: PixartFamily;
  transformer: { config: PixartConfig; checkpoint: Checkpoint };
  textEncoder: { config: T5Config; checkpoint: Checkpoint; dir: string };
  tokenizerDir: string;
  vae?: { config: VaeConfig; checkpoint: Checkpoint };
  /** Absent (original checkpoints): PixArt's published config. */
  scheduler?: DiffusersDdimConfig;
}
/** Whether `root` holds a diffusers PixArt pipeline (by model_index.json or the transformer's config). */
export async function isPixartPipeline(root: string): Promise<boolean> {
  const index = await readJsonOr(join(root, "model_index.json"));
  if (typeof index?._class_name === "string" && /pixart/i.test(index._class_name)) return true;
  const cfg = await readJsonOr(join(root, "transformer", "config.json"));
  return cfg?.norm_type === "ada_norm_single";
}

export async function readPixartSource(root: string): Promise<PixartSource> {
  const need = async (sub: string, what: string) => {
    const dir = join(root, sub);
    if (!await Deno.stat(dir).then((s) => s.isDirectory, () => false)) {
      throw new ForaError("bundle", `${root}: PixArt pipeline without a ${sub}/ folder (${what})`);
    }
    return dir;
  };
  const trDir = await need("transformer", "the PixArt transformer");
  const trCfgPath = join(trDir, "config.json");
  const family: PixartFamily = (await readJsonOr(join(root, "model_index.json")))?._class_name === "PixArtSigmaPipeline"
    ? "sigma"
    : "alpha";
  let config = parsePixartDiffusersConfig(await readJson(trCfgPath), trCfgPath);
  const trCkpt = await loadCheckpoint(trDir);
  const naming = detectPixartNaming(trCkpt.tensors.keys());
  if (!naming) throw new ForaError("weights", `${trDir}: no PixArt tensors found (expected "adaln_single.*" or "t_block.*" names)`);
  refuseUnsupportedTensors(trCkpt.tensors.keys(), trDir);
  config = { ...config, naming, maxTokens: family === "sigma" ? PIXART_SIGMA_MAX_TOKENS : PIXART_MAX_TOKENS };
  const teDir = await need("text_encoder", "the T5 encoder");
  const teCfgPath = join(teDir, "config.json");
  const t5 = parseT5Config(await readJson(teCfgPath), teCfgPath);
  if (t5.dModel !== config.captionChannels) {
    throw new ForaError(
      "bundle",
      `${teCfgPath}: d_model ${t5.dModel} does not match the transformer's caption_channels ${config.captionChannels}`,
    );
  }
  const tokDir = await need("tokenizer", "the T5 tokenizer");
  await loadT5Tokenizer(tokDir); // fails early when neither spiece.model nor tokenizer.json reads
  let vae: PixartSource["vae"];
  const vaeDir = join(root, "vae");
  if (await Deno.stat(vaeDir).then((s) => s.isDirectory, () => false)) {
    const p = join(vaeDir, "config.json");
    const vc = parseVaeConfig(await readJson(p), p);
    if (vc.latentChannels !== config.inChannels) {
      throw new ForaError(
        "bundle",
        `${p}: latent_channels ${vc.latentChannels} does not match the transformer's in_channels ${config.inChannels}`,
      );
    }
    vae = { config: vc, checkpoint: await loadCheckpoint(vaeDir) };
  }
  return {
    root,
    family,
    transformer: { config, checkpoint: trCkpt },
    textEncoder: { config: t5, checkpoint: await loadCheckpoint(teDir), dir: teDir },
    tokenizerDir: tokDir,
    vae,
    scheduler: await readPipelineScheduler(root),
  };
}

export function describePixartSource(s: PixartSource): string {
  const c = s.transformer.config, t = s.textEncoder.config;
  return `reading ${s.root}: PixArt-${s.family} pipeline (${c.naming} weights), depth ${c.depth}, hidden ${c.hiddenSize}, ` +
    `interpolation scale ${c.interpolationScale}${c.microConditions ? ", micro-conditions" : ""}, captions ${c.maxTokens} tokens, ` +
    `T5 encoder ${t.numLayers} layers x ${t.dModel}, ${s.vae ? `with VAE (latents / ${s.vae.config.scalingFactor})` : "no VAE"}`;
}
async function readJsonOr(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
