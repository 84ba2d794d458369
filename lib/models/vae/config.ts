/**
 * The Stable Diffusion VAE decoder's architecture, from a diffusers `vae/config.json`
 * (AutoencoderKL). Only the decoder half matters here: block_out_channels (encoder
 * order; the decoder walks them reversed), layers_per_block (the decoder's up blocks
 * hold one more resnet than that), norm_num_groups, latent_channels, out_channels, and
 * the latent scaling applied before decoding.
 */
import { ForaError } from "../../errors.ts";

export interface VaeConfig {
  /** Encoder order, e.g. [128, 256, 512, 512]; the decoder starts from the last. */
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  latentChannels: number;
  outChannels: number;
  /** Latents are divided by this before decoding (0.18215 for SD 1.x/2.x). */
  scalingFactor: number;
  /** Added after the division (SD3/FLUX VAEs); 0 for Stable Diffusion 1.x/2.x. */
  shiftFactor: number;
  /** False for VAEs without quant/post_quant convs (SD3, FLUX). */
  usePostQuantConv: boolean;
  /** False for VAEs without the mid-block attention. */
  midBlockAddAttention: boolean;
}

export const DEFAULT_SCALING_FACTOR = 0.18215;

const SD_VAE: VaeConfig = {
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: 32,
  latentChannels: 4,
  outChannels: 3,
  scalingFactor: DEFAULT_SCALING_FACTOR,
  shiftFactor: 0,
  usePostQuantConv: true,
  midBlockAddAttention: true,
};

/** stabilityai/sd-vae-ft-ema and sd-vae-ft-mse share the SD 1.x VAE architecture. */
export const VAE_PRESETS: Readonly<Record<string, VaeConfig>> = {
  "sd-vae-ft-ema": SD_VAE,
  "sd-vae-ft-mse": SD_VAE,
};

export function vaePreset(name: string): VaeConfig {
  const preset = VAE_PRESETS[name];
  if (!preset) {
    throw new ForaError("usage", `unknown VAE preset "${name}"; use one of ${Object.keys(VAE_PRESETS).join(", ")}`);
  }
  return { ...preset, blockOutChannels: [...preset.blockOutChannels] };
}

/** Spatial upscale from latent to image: 2 per up block but the last (8 for SD). */
export function upscaleFactor(cfg: VaeConfig): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

/** Reads and parses `vae/config.json`. */
export async function loadVaeConfig(path: string): Promise<VaeConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ForaError("bundle", `${path}: cannot read VAE config (${why})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ForaError("bundle", `${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseVaeConfig(json, path);
}

export function parseVaeConfig(json: unknown, where: string): VaeConfig {
  const fail = (msg: string) => new ForaError("bundle", `${where}: ${msg}`);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw fail("expected a JSON object");
  const o = json as Record<string, unknown>;

  const cls = o["_class_name"];
  if (cls !== undefined && cls !== "AutoencoderKL") {
    throw fail(`_class_name "${cls}" is not supported; only AutoencoderKL (the Stable Diffusion VAE) is`);
  }
  const act = o["act_fn"];
  if (act !== undefined && act !== "silu") throw fail(`act_fn "${act}" is not supported; only "silu" is`);

  const blocks = o["block_out_channels"];
  if (!Array.isArray(blocks) || blocks.length === 0 || !blocks.every(isPositiveInt)) {
    throw fail(`"block_out_channels" must be a non-empty list of positive integers, found ${JSON.stringify(blocks)}`);
  }
  const upTypes = o["up_block_types"];
  if (upTypes !== undefined) {
    if (!Array.isArray(upTypes) || upTypes.length !== blocks.length) {
      throw fail(`"up_block_types" must list ${blocks.length} blocks, one per block_out_channels entry`);
    }
    const other = upTypes.find((t) => t !== "UpDecoderBlock2D");
    if (other !== undefined) throw fail(`up block type ${JSON.stringify(other)} is not supported; only UpDecoderBlock2D is`);
  }
  for (const key of ["latents_mean", "latents_std"]) {
    if (o[key] !== undefined && o[key] !== null) throw fail(`"${key}" (per-channel latent normalisation) is not supported`);
  }

  const cfg: VaeConfig = {
    blockOutChannels: blocks as number[],
    layersPerBlock: int(o, "layers_per_block", fail),
    normNumGroups: int(o, "norm_num_groups", fail, 32),
    latentChannels: int(o, "latent_channels", fail),
    outChannels: int(o, "out_channels", fail, 3),
    scalingFactor: positiveNumber(o, "scaling_factor", fail, DEFAULT_SCALING_FACTOR),
    shiftFactor: finiteNumber(o, "shift_factor", fail, 0),
    usePostQuantConv: bool(o, "use_post_quant_conv", fail, true),
    midBlockAddAttention: bool(o, "mid_block_add_attention", fail, true),
  };
  for (const ch of cfg.blockOutChannels) {
    if (ch % cfg.normNumGroups !== 0) {
      throw fail(`block_out_channels entry ${ch} is not divisible by norm_num_groups ${cfg.normNumGroups}`);
    }
  }
  return cfg;
}

type Fail = (msg: string) => ForaError;

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

function int(o: Record<string, unknown>, key: string, fail: Fail, fallback?: number): number {
  const v = o[key];
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  if (v === undefined) throw fail(`missing "${key}"`);
  if (!isPositiveInt(v)) throw fail(`"${key}" must be a positive integer, found ${JSON.stringify(v)}`);
  return v;
}

function finiteNumber(o: Record<string, unknown>, key: string, fail: Fail, fallback: number): number {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw fail(`"${key}" must be a number, found ${JSON.stringify(v)}`);
  return v;
}

function positiveNumber(o: Record<string, unknown>, key: string, fail: Fail, fallback: number): number {
  const v = finiteNumber(o, key, fail, fallback);
  if (v <= 0) throw fail(`"${key}" must be positive, found ${v}`);
  return v;
}

function bool(o: Record<string, unknown>, key: string, fail: Fail, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw fail(`"${key}" must be true or false, found ${JSON.stringify(v)}`);
  return v;
}
