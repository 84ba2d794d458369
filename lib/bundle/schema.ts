/**
 * Manifests are checked against JSON Schemas (ajv), written with the builders below: each
 * schema that can fail carries, as its `description`, the words of the error a reader sees
 * ("must be a positive integer"). The first failure becomes one line naming the key the way
 * the manifest spells it, e.g. `"dit.config.depth" must be a positive integer`; checks that
 * span fields (a path the file table lists, names as many as classes) stay in code.
 */
import { Ajv2020, type ErrorObject, type SchemaObject, type ValidateFunction } from "ajv/dist/2020.js";

type Schema = SchemaObject;

const described = (description: string, s: Schema): Schema => ({ ...s, description });

/**
 * A positive integer; with `max`, at most that: sizes that set how much a reader allocates
 * (depth, widths, token counts) carry a bound far above any real model's, so a manifest
 * cannot make fora allocate without limit.
 */
export const posInt = (max?: number): Schema =>
  max === undefined
    ? described("must be a positive integer", { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
    : described(`must be an integer from 1 to ${max}`, { type: "integer", minimum: 1, maximum: max });
export const count = (max?: number): Schema =>
  max === undefined
    ? described("must be a non-negative integer", { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
    : described(`must be an integer from 0 to ${max}`, { type: "integer", minimum: 0, maximum: max });

/**
 * The bounds of a model's sizes in a manifest: each several times the largest real model's
 * (DiT-XL/2: depth 28, width 1152, 16 heads, 1000 classes; PixArt-alpha 1024: a 128x128 latent,
 * T5's 4096 channels, 120 tokens; SD's VAE: 512 channels), far below what would exhaust memory.
 */
export const MODEL_LIMITS = {
  depth: 256,
  hiddenSize: 16_384,
  numHeads: 256,
  patchSize: 64,
  inputSize: 1024,
  channels: 64,
  numClasses: 1_000_000,
  tokens: 65_536,
  freqDim: 16_384,
  captionChannels: 16_384,
  maxTokens: 4096,
  vaeChannels: 4096,
  vaeLayers: 16,
} as const;
/** JSON holds no infinities or NaN: every number it parses is finite. */
export const num = (): Schema => described("must be a number", { type: "number" });
export const bool = (): Schema => described("must be true or false", { type: "boolean" });
export const str = (): Schema => described("must be a string", { type: "string" });
export const oneOf = (values: readonly string[]): Schema =>
  described(`must be one of ${values.map((v) => JSON.stringify(v)).join(", ")}`, { enum: [...values] });
export const list = (items: Schema, description = "must be a list"): Schema => described(description, { type: "array", items });
/**
 * An object with these properties, all required but those named `optional` (fields that
 * manifests of earlier versions lack; their reader supplies the default); other keys are
 * allowed (and ignored).
 */
export const obj = (properties: Record<string, Schema>, opts: { nullable?: boolean; optional?: readonly string[] } = {}): Schema =>
  described("must be a JSON object", {
    type: opts.nullable ? ["object", "null"] : "object",
    required: Object.keys(properties).filter((k) => !opts.optional?.includes(k)),
    properties,
  });
/** A number in (0, max]. */
export const positive = (max: number): Schema =>
  described(`must be a number above 0 and at most ${max}`, { type: "number", exclusiveMinimum: 0, maximum: max });
/** An integer in [1, max]. */
export const intUpTo = (max: number): Schema =>
  described(`must be an integer from 1 to ${max}`, { type: "integer", minimum: 1, maximum: max });
export { described };

/**
 * A checker for `schema`: returns the value typed as T when it passes, else calls `fail`
 * with the key of the first failure ("" for the root) and its schema's description.
 */
export function schemaChecker<T>(schema: Schema): (json: unknown, fail: (key: string, message: string) => never) => T {
  // Compiled on first use: commands that read no manifest do not pay for it.
  let validate: ValidateFunction<T> | null = null;
  return (json, fail) => {
    validate ??= new Ajv2020({ allErrors: false, strict: false }).compile<T>(schema);
    if (validate(json)) return json;
    const e = (validate.errors ?? [])[0];
    if (!e) return fail("", "does not match the manifest schema");
    const { key, message } = explain(schema, e);
    return fail(key, message);
  };
}

/**
 * The failing key and the words for it: the deepest schema along the error's path that
 * carries a description, and the part of the instance path down to that schema.
 */
function explain(root: Schema, e: ErrorObject): { key: string; message: string } {
  const instance = e.instancePath.split("/").slice(1);
  const steps = e.schemaPath.replace(/^#\//, "").split("/");
  let node: Schema = root, depth = 0;
  let best = { description: root.description as string | undefined, depth: 0 };
  for (let i = 0; i < steps.length - 1; i++) {
    const s = steps[i];
    if (s === "properties") (node = node.properties[steps[++i]]), depth++;
    else if (s === "items") (node = node.items), depth++;
    else break;
    if (typeof node.description === "string") best = { description: node.description, depth };
  }
  let path = instance.slice(0, best.depth);
  let message = best.description ?? e.message ?? "is not valid";
  if (e.keyword === "required" && best.depth === instance.length) {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    path = [...instance, missing];
    message = node.properties?.[missing]?.description ?? "is missing";
  }
  return { key: path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : `${i ? "." : ""}${p}`)).join(""), message };
}

/** The bounded shape fields DiT and PixArt configs share (TransformerShape in lib/models/patch_grid.ts). */
export function transformerShapeSchema() {
  return {
    depth: posInt(MODEL_LIMITS.depth),
    hiddenSize: posInt(MODEL_LIMITS.hiddenSize),
    numHeads: posInt(MODEL_LIMITS.numHeads),
    patchSize: posInt(MODEL_LIMITS.patchSize),
    inputSize: posInt(MODEL_LIMITS.inputSize),
    inChannels: posInt(MODEL_LIMITS.channels),
  };
}
