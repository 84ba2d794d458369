/**
 * Recognising a model folder that `fora convert` can read:
 *
 * - diffusers pipeline: `model_index.json`, `transformer/config.json` plus its
 *   safetensors (single file or sharded with an index), optionally `vae/config.json`
 *   plus safetensors;
 * - original DiT: `config.json` (depth, hidden_size, num_heads, patch_size, input_size,
 *   in_channels, num_classes, learn_sigma) and `model.safetensors` in the
 *   facebookresearch/DiT naming; no VAE.
 *
 * An optional `"space": "pixel"` (or "latent", the default) in the model's config.json
 * (for diffusers also accepted in model_index.json) marks pixel-space models.
 * Only headers are read here; the weights stay where they are.
 */
import { asObject } from "../models/config_fields.ts";
import { join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { type Checkpoint, loadCheckpoint } from "../weights/checkpoint.ts";
import { type DitConfig, parseDiffusersConfig, parseOriginalConfig } from "../models/dit/config.ts";
import { detectNaming } from "../models/dit/graphs.ts";
import { parseVaeConfig, type VaeConfig } from "../models/vae/config.ts";
import type { Space } from "./manifest.ts";

export interface ModelSource {
  layout: "diffusers" | "original";
  /** Absolute path of the folder (or of the PyTorch checkpoint file it came from). */
  root: string;
  space: Space;
  /** Human names of the classes, index = class id; null when the source has none. */
  classNames: string[] | null;
  dit: { config: DitConfig; checkpoint: Checkpoint };
  vae?: { config: VaeConfig; checkpoint: Checkpoint };
}

const NOT_A_MODEL = "not a model folder fora can read: expected model_index.json (a diffusers DiT pipeline) " +
  "or config.json + model.safetensors (an original-format DiT)";

export async function readModelSource(path: string): Promise<ModelSource> {
  const root = resolve(path);
  const info = await Deno.stat(root).catch((e) => {
    if (e instanceof Deno.errors.NotFound) throw new ForaError("usage", `${root}: no such folder`);
    throw new ForaError("io", `${root}: cannot read: ${(e as Error).message}`);
  });
  if (!info.isDirectory) {
    throw new ForaError("usage", `${root}: is a file; pass the model folder (the one holding model_index.json or config.json)`);
  }
  if (await exists(join(root, "model_index.json"))) return readDiffusers(root);
  if (await exists(join(root, "config.json"))) return readOriginal(root);
  throw new ForaError("usage", `${root}: ${NOT_A_MODEL}`);
}

async function readDiffusers(root: string): Promise<ModelSource> {
  const index = asObject(await readJson(join(root, "model_index.json")), join(root, "model_index.json"));
  const transformerDir = join(root, "transformer");
  if (!await isDir(transformerDir)) {
    throw new ForaError("bundle", `${root}: diffusers pipeline without a transformer/ folder; fora converts DiT pipelines`);
  }
  const configPath = join(transformerDir, "config.json");
  const configJson = await readJson(configPath);
  const config = parseDiffusersConfig(configJson, configPath);
  const checkpoint = await loadCheckpoint(transformerDir);
  checkNaming(checkpoint, config, transformerDir);

  const vaeDir = join(root, "vae");
  const listed = index.vae !== undefined && !(Array.isArray(index.vae) && index.vae.every((v) => v === null));
  let vae: ModelSource["vae"];
  if (await isDir(vaeDir)) {
    const vaeConfigPath = join(vaeDir, "config.json");
    const vaeJson = await readJson(vaeConfigPath);
    const vaeConfig = parseVaeConfig(vaeJson, vaeConfigPath);
    if (vaeConfig.latentChannels !== config.inChannels) {
      throw new ForaError(
        "bundle",
        `${vaeConfigPath}: latent_channels ${vaeConfig.latentChannels} does not match the transformer's in_channels ${config.inChannels}`,
      );
    }
    vae = { config: vaeConfig, checkpoint: await loadCheckpoint(vaeDir) };
  } else if (listed) {
    throw new ForaError("bundle", `${join(root, "model_index.json")}: lists a "vae" but ${vaeDir} does not exist`);
  }

  const space = readSpace(asObject(configJson, configPath), configPath) ??
    readSpace(index, join(root, "model_index.json")) ?? "latent";
  if (space === "pixel" && vae) {
    throw new ForaError("bundle", `${root}: marked "space": "pixel" but has a VAE; a pixel-space model has none`);
  }
  const classNames = readId2Label(index, join(root, "model_index.json"), config.numClasses);
  return { layout: "diffusers", root, space, classNames, dit: { config, checkpoint }, vae };
}

async function readOriginal(root: string): Promise<ModelSource> {
  const configPath = join(root, "config.json");
  const json = asObject(await readJson(configPath), configPath);
  if (typeof json._class_name === "string") {
    throw new ForaError(
      "usage",
      `${configPath}: this is a diffusers component config (${json._class_name}); pass the pipeline folder that holds model_index.json`,
    );
  }
  const config = parseOriginalConfig(json, configPath);
  const checkpoint = await loadCheckpoint(root);
  checkNaming(checkpoint, config, root);
  return {
    layout: "original",
    root,
    space: readSpace(json, configPath) ?? "latent",
    classNames: readClassNames(json, configPath, config.numClasses),
    dit: { config, checkpoint },
  };
}

/** The config's layout and the tensor names must agree: they compute different functions. */
function checkNaming(ckpt: Checkpoint, config: DitConfig, where: string): void {
  const naming = detectNaming(ckpt.tensors.keys());
  if (naming === undefined) {
    throw new ForaError(
      "weights",
      `${where}: no DiT tensors found in ${ckpt.files.join(", ")} (expected "blocks.N..." or "transformer_blocks.N..." names)`,
    );
  }
  if (naming !== config.naming) {
    throw new ForaError(
      "weights",
      `${where}: the config is in ${config.naming} layout but the tensors use ${naming} names; ` +
        (naming === "original"
          ? "put model.safetensors next to an original config.json (depth, hidden_size, ...)"
          : "use the diffusers pipeline folder (model_index.json, transformer/config.json)"),
    );
  }
}

function readSpace(o: Record<string, unknown>, where: string): Space | undefined {
  const v = o.space;
  if (v === undefined) return undefined;
  if (v !== "latent" && v !== "pixel") {
    throw new ForaError("bundle", `${where}: "space" must be "latent" or "pixel", found ${JSON.stringify(v)}`);
  }
  return v;
}

/** A JSON file of a model or bundle folder, with one-line errors naming it. */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new ForaError("bundle", `${path}: missing`);
    throw new ForaError("bundle", `${path}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ForaError("bundle", `${path}: not valid JSON (${(e as Error).message})`);
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function isDir(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isDirectory, () => false);
}

/** `"class_names": [...]` of an original config.json, one name per class. */
function readClassNames(o: Record<string, unknown>, where: string, numClasses: number): string[] | null {
  const v = o.class_names;
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== numClasses || !v.every((n) => typeof n === "string" && n.trim() !== "")) {
    throw new ForaError("bundle", `${where}: "class_names" must list ${numClasses} non-empty names, one per class`);
  }
  return v as string[];
}

/**
 * diffusers' DiT pipelines carry `"id2label": {"0": "tench, Tinca tinca", ...}`; the
 * first comma-separated name of each entry becomes the class name.
 */
function readId2Label(o: Record<string, unknown>, where: string, numClasses: number): string[] | null {
  const v = o.id2label;
  if (v === undefined || v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) throw new ForaError("bundle", `${where}: "id2label" must map class ids to names`);
  const names = Array.from({ length: numClasses }, (_, i) => (v as Record<string, unknown>)[String(i)]);
  if (!names.every((n) => typeof n === "string" && n.trim() !== "")) {
    throw new ForaError("bundle", `${where}: "id2label" must name every class 0..${numClasses - 1}`);
  }
  return names.map((n) => (n as string).split(",")[0].trim());
}
