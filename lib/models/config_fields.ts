/**
 * Reading model config.json files: typed fields with one-line errors naming the file
 * and key, and the shape checks every diffusion transformer config must pass.
 */
import { ForaError } from "../errors.ts";

export type ConfigObject = Record<string, unknown>;

export function asObject(json: unknown, where: string): ConfigObject {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ForaError("bundle", `${where}: expected a JSON object`);
  }
  return json as ConfigObject;
}

export function positiveInt(o: ConfigObject, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ForaError("bundle", `${where}: "${key}" must be a positive integer, found ${JSON.stringify(v)}`);
  }
  return v;
}

export function positiveNumber(o: ConfigObject, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ForaError("bundle", `${where}: "${key}" must be a positive number, found ${JSON.stringify(v)}`);
  }
  return v;
}

export function bool(o: ConfigObject, key: string, where: string, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new ForaError("bundle", `${where}: "${key}" must be true or false`);
  return v;
}

/** Heads divide the width, patches tile the input, and the 2D sin-cos embedding fits. */
export function checkTransformerShape<C extends { hiddenSize: number; numHeads: number; inputSize: number; patchSize: number }>(
  c: C,
  where: string,
): C {
  const fail = (msg: string) => new ForaError("bundle", `${where}: ${msg}`);
  if (c.hiddenSize % c.numHeads !== 0) throw fail(`hidden size ${c.hiddenSize} is not divisible by ${c.numHeads} heads`);
  if (c.inputSize % c.patchSize !== 0) throw fail(`input size ${c.inputSize} is not divisible by patch size ${c.patchSize}`);
  if (c.hiddenSize % 4 !== 0) throw fail(`hidden size ${c.hiddenSize} must be a multiple of 4 (2D sin-cos position embedding)`);
  return c;
}

/** A patch transformer's shape under an original-layout config.json's keys (DiT's, which PixArt's original layout keeps). */
export function originalShape(o: ConfigObject, where: string) {
  return {
    depth: positiveInt(o, "depth", where),
    hiddenSize: positiveInt(o, "hidden_size", where),
    numHeads: positiveInt(o, "num_heads", where),
    patchSize: positiveInt(o, "patch_size", where),
    inputSize: positiveInt(o, "input_size", where),
    inChannels: positiveInt(o, "in_channels", where),
  };
}

/**
 * A patch transformer's shape under a diffusers transformer/config.json's keys; sigma is
 * learned when out_channels is twice in_channels (absent: equal).
 */
export function diffusersShape(o: ConfigObject, where: string) {
  const inChannels = positiveInt(o, "in_channels", where);
  const out = o.out_channels === undefined || o.out_channels === null ? inChannels : positiveInt(o, "out_channels", where);
  if (out !== inChannels && out !== 2 * inChannels) {
    throw new ForaError("bundle", `${where}: out_channels ${out} must equal in_channels ${inChannels} or twice it`);
  }
  const heads = positiveInt(o, "num_attention_heads", where);
  return {
    depth: positiveInt(o, "num_layers", where),
    hiddenSize: heads * positiveInt(o, "attention_head_dim", where),
    numHeads: heads,
    patchSize: positiveInt(o, "patch_size", where),
    inputSize: positiveInt(o, "sample_size", where),
    inChannels,
    learnSigma: out === 2 * inChannels,
  };
}
