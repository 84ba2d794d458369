/**
 * Which manifests fora accepts: each manifest's structure by a JSON Schema (schema.ts), then
 * in code the checks that span fields (every referenced file is listed, names as many as
 * classes). Every failure is one line naming the offending key.
 */
import { ForaError } from "../errors.ts";
import { isSafeRelativePath } from "../io/paths.ts";
import type { DitGraphKind } from "../models/dit/graphs.ts";
import { DEFAULT_VAE_SCALE_FACTOR, PIXART_STEP_KINDS, type PixartGraphKind } from "../models/pixart/graphs.ts";
import { upscaleFactor } from "../models/vae/config.ts";
import { SPIECE_FILE, TOKENIZER_JSON_FILE } from "../text/tokenizer.ts";
import {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  DIT_GRAPH_KINDS,
  type DitGraphEntry,
  FLOAT_PRECISIONS,
  GUIDANCES,
  type Manifest,
  MANIFEST_FILE,
  PRECISIONS,
  type WeightsEntry,
} from "./manifest.ts";
import { PIXART_FAMILIES, type PixartManifest } from "./pixart_manifest.ts";
import { PIXART_DDIM_DEFAULT, schedulerSchema } from "./scheduler_config.ts";
import {
  bool,
  count,
  described,
  intUpTo,
  list,
  MODEL_LIMITS,
  num,
  obj,
  oneOf,
  posInt,
  positive,
  schemaChecker,
  str,
  transformerShapeSchema,
} from "./schema.ts";

export function bundleError(where: string, message: string): ForaError {
  // Messages may quote the manifest's text (JSON.parse does): escape its control characters
  // (newlines, terminal escape sequences) so that the error stays one printable line.
  // deno-lint-ignore no-control-regex
  const printable = message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return new ForaError("bundle", `${where}: ${printable}`);
}

// ---- DiT ----------------------------------------------------------------------------

const weightsSchema = () =>
  obj({
    files: list(str()),
    dtypes: list({ type: "string" }, "must be a list of strings"),
    tensors: count(),
    parameters: count(),
    bytes: count(),
  });
const fileSchema = obj({
  path: str(),
  size: count(),
  sha256: described("must be 64 lowercase hex digits", { type: "string", pattern: "^[0-9a-f]{64}$" }),
});

/** A DiT manifest's structure (after its format, version and architecture are known). */
const MANIFEST_SCHEMA = obj({
  foraVersion: str(),
  source: obj({ layout: oneOf(["diffusers", "original"]), path: str() }),
  space: oneOf(["latent", "pixel"]),
  files: list(fileSchema),
  dit: obj({
    naming: oneOf(["original", "diffusers"]),
    config: obj({
      ...transformerShapeSchema(),
      numClasses: posInt(MODEL_LIMITS.numClasses),
      learnSigma: bool(),
      naming: oneOf(["original", "diffusers"]),
      freqDivisor: num(),
      mlpNormEps: num(),
    }),
    conventions: obj({
      timestepFreqDim: posInt(MODEL_LIMITS.freqDim),
      freqDivisor: num(),
      normEps: num(),
      mlpNormEps: num(),
      nullClass: count(MODEL_LIMITS.numClasses),
      outChannels: posInt(2 * MODEL_LIMITS.channels),
      tokens: posInt(MODEL_LIMITS.tokens),
    }),
    weights: weightsSchema(),
    // "partial": the one graph of bundles converted before partial reuse got its two lean graphs.
    graphs: list(obj({
      file: str(),
      kind: oneOf([...DIT_GRAPH_KINDS, "partial"]),
      guidance: oneOf(GUIDANCES),
      precision: oneOf(PRECISIONS),
      attention: oneOf(["portable", "fused"]),
    })),
  }),
  vae: obj({
    config: obj({
      blockOutChannels: described("must be a non-empty list of positive integers", {
        type: "array",
        minItems: 1,
        maxItems: 16,
        items: posInt(MODEL_LIMITS.vaeChannels),
      }),
      layersPerBlock: posInt(MODEL_LIMITS.vaeLayers),
      normNumGroups: posInt(MODEL_LIMITS.vaeChannels),
      latentChannels: posInt(MODEL_LIMITS.channels),
      outChannels: posInt(MODEL_LIMITS.channels),
      scalingFactor: num(),
      shiftFactor: num(),
      usePostQuantConv: bool(),
      midBlockAddAttention: bool(),
    }),
    weights: weightsSchema(),
    graphs: list(obj({
      file: str(),
      precision: oneOf(FLOAT_PRECISIONS),
      latentSize: described("must be [height, width]", { type: "array", minItems: 2, maxItems: 2, items: posInt(MODEL_LIMITS.inputSize) }),
    })),
  }, { nullable: true }),
});

type ManifestJson = Omit<Manifest, "format" | "formatVersion" | "architecture" | "dit"> & {
  dit: Omit<Manifest["dit"], "classNames" | "graphs"> & {
    classNames?: unknown;
    graphs: (Omit<DitGraphEntry, "kind"> & { kind: string })[];
  };
};
const checkStructure = schemaChecker<ManifestJson>(MANIFEST_SCHEMA);

/** Checks a parsed manifest: its structure by MANIFEST_SCHEMA, then what spans fields; each message names the offending key. */
export function checkManifest(json: unknown, where: string): Manifest {
  const fail = (key: string, msg: string): never => {
    throw bundleError(where, `${key ? `"${key}" ` : ""}${msg}`);
  };
  const m = typeof json === "object" && json !== null && !Array.isArray(json)
    ? json as Record<string, unknown>
    : fail("", "must be a JSON object");
  if (m.format !== BUNDLE_FORMAT) {
    fail("format", `is ${JSON.stringify(m.format)}, expected ${JSON.stringify(BUNDLE_FORMAT)}: not a fora bundle manifest`);
  }
  const version = m.formatVersion;
  if (!Number.isSafeInteger(version) || (version as number) < 1) fail("formatVersion", "must be a positive integer");
  if ((version as number) > BUNDLE_FORMAT_VERSION) {
    fail("formatVersion", `is ${version}, newer than this fora reads (${BUNDLE_FORMAT_VERSION}); upgrade fora`);
  }
  if (m.architecture === "pixart") fail("architecture", `is "pixart": a PixArt-alpha bundle, which only fora generate and fora info read`);
  if (m.architecture !== "dit") fail("architecture", `is ${JSON.stringify(m.architecture)}; this fora reads "dit" and "pixart" bundles`);
  const s = checkStructure(json, fail);

  const relPath = (p: string, key: string): string => {
    if (!isSafeRelativePath(p)) {
      fail(key, `is ${JSON.stringify(p)}: paths must be relative, inside the bundle folder (no absolute paths, no "..")`);
    }
    return p;
  };
  const listed = new Set<string>();
  s.files.forEach((f, i) => {
    relPath(f.path, `files[${i}].path`);
    if (f.path === MANIFEST_FILE) fail("files", `must not list ${MANIFEST_FILE} itself`);
    if (listed.has(f.path)) fail("files", `lists ${f.path} twice`);
    listed.add(f.path);
  });
  const listedPath = (p: string, key: string): string => {
    if (!listed.has(relPath(p, key))) fail(key, `names ${p}, which "files" does not list`);
    return p;
  };
  const weights = (w: WeightsEntry, key: string): WeightsEntry => {
    w.files.forEach((p, i) => listedPath(p, `${key}.files[${i}]`));
    return w;
  };

  const { config, naming } = s.dit;
  if (config.naming !== naming) fail("dit.naming", `is ${naming} but dit.config.naming is ${config.naming}`);
  const graphs = s.dit.graphs.flatMap((g, i): DitGraphEntry[] => {
    // Legacy "partial" entries: such bundles still run every other policy, and partial asks
    // for a re-conversion (ditGraphPath).
    if (g.kind === "partial") return [];
    listedPath(g.file, `dit.graphs[${i}].file`);
    return [{ ...g, kind: g.kind as DitGraphKind }];
  });
  if (graphs.length === 0) fail("dit.graphs", "is empty: the bundle has no DiT graph");
  const classNames = s.dit.classNames ?? null;
  if (
    classNames !== null &&
    (!Array.isArray(classNames) || classNames.length !== config.numClasses || !classNames.every((x) => typeof x === "string"))
  ) {
    fail("dit.classNames", `must be null or a list of ${config.numClasses} names`);
  }
  weights(s.dit.weights, "dit.weights");
  if (s.vae) {
    weights(s.vae.weights, "vae.weights");
    s.vae.graphs.forEach((g, i) => listedPath(g.file, `vae.graphs[${i}].file`));
    if (s.space === "pixel") fail("vae", "must be null for a pixel-space model");
  }

  return {
    format: BUNDLE_FORMAT,
    formatVersion: version as number,
    foraVersion: s.foraVersion,
    architecture: "dit",
    source: s.source,
    space: s.space,
    dit: { ...s.dit, classNames: classNames as string[] | null, graphs },
    vae: s.vae,
    files: s.files,
  };
}

// ---- PixArt -------------------------------------------------------------------------

/** Bounds on a manifest's values, with room to spare: the largest published scale is 4 (Sigma 2K), every published VAE's factor 8. */
const MAX_INTERPOLATION_SCALE = 64;
const MAX_VAE_SCALE_FACTOR = 64;

/** Graph kinds as earlier PixArt bundles spelled them, before all kinds took DiT's underscores; their files keep those names. */
const LEGACY_PIXART_KINDS: Record<string, PixartGraphKind> = { "full-xr": "full_xr", "reuse-xr": "reuse_xr" };
const listedFiles = () => obj({ files: list(str()) });

/** The parts of a PixArt manifest a reader relies on (the file table and the header are checked by readAnyManifest). */
const PIXART_SCHEMA = obj({
  pixart: obj({
    config: obj({
      ...transformerShapeSchema(),
      captionChannels: posInt(MODEL_LIMITS.captionChannels),
      maxTokens: posInt(MODEL_LIMITS.maxTokens),
      interpolationScale: positive(MAX_INTERPOLATION_SCALE),
      microConditions: bool(),
    }, { optional: ["interpolationScale", "microConditions"] }),
    conventions: obj({
      unconditional: oneOf(["null-caption", "empty-prompt"]),
      family: oneOf(PIXART_FAMILIES),
      vaeScaleFactor: intUpTo(MAX_VAE_SCALE_FACTOR),
    }, { optional: ["family", "vaeScaleFactor"] }),
    weights: listedFiles(),
    graphs: list(
      obj({
        file: str(),
        kind: oneOf(["text", ...PIXART_STEP_KINDS, ...Object.keys(LEGACY_PIXART_KINDS)]),
        precision: oneOf(FLOAT_PRECISIONS),
      }),
    ),
    scheduler: schedulerSchema(),
  }, { optional: ["scheduler"] }),
  textEncoder: obj({ config: obj({}), weights: listedFiles(), graphs: list(obj({ file: str() })), tokenizer: str() }),
  vae: obj({ graphs: list(obj({ file: str() })) }, { nullable: true }),
});
const checkPixartStructure = schemaChecker<PixartManifest>(PIXART_SCHEMA);

/**
 * Manifests written before PixArt-Sigma and the 1024-MS model lack their fields; those
 * bundles are PixArt-alpha 256/512 ones: an unscaled position table, no micro-conditions,
 * and the VAE's own factor (8 without a VAE, as diffusers' pipelines assume). Those written
 * before the scheduler was recorded take PixArt's published one.
 */
function withPixartDefaults(m: PixartManifest): PixartManifest {
  const c = m.pixart.config, conv = m.pixart.conventions;
  const blocks = (m.vae?.config as { blockOutChannels?: unknown } | undefined)?.blockOutChannels;
  const vaeFactor = Array.isArray(blocks) && blocks.length > 0 ? upscaleFactor(m.vae!.config) : DEFAULT_VAE_SCALE_FACTOR;
  c.interpolationScale ??= 1;
  c.microConditions ??= false;
  conv.family ??= "alpha";
  conv.vaeScaleFactor ??= vaeFactor;
  m.pixart.scheduler ??= PIXART_DDIM_DEFAULT;
  return m;
}

/**
 * Check of a PixArt manifest: its structure by PIXART_SCHEMA; `listed` are the paths
 * `files` lists, which every referenced file must be among.
 */
export function checkPixartManifest(json: Record<string, unknown>, where: string, listed: Set<string>): PixartManifest {
  const fail = (key: string, msg: string): never => {
    throw new ForaError("bundle", `${where}: "${key}" ${msg}`);
  };
  const m = withPixartDefaults(checkPixartStructure(json, fail));
  for (const g of m.pixart.graphs) g.kind = LEGACY_PIXART_KINDS[g.kind] ?? g.kind;
  if (m.pixart.config.microConditions && m.pixart.config.hiddenSize % 3 !== 0) {
    fail("pixart.config.microConditions", "needs a hiddenSize divisible by 3 (one third per size embedder)");
  }
  const file = (v: string, key: string) => {
    if (!listed.has(v)) fail(key, `must name a file that "files" lists`);
  };
  m.pixart.graphs.forEach((g, i) => file(g.file, `pixart.graphs[${i}].file`));
  m.textEncoder.graphs.forEach((g, i) => file(g.file, `textEncoder.graphs[${i}].file`));
  if (![SPIECE_FILE, TOKENIZER_JSON_FILE].some((f) => listed.has(`${m.textEncoder.tokenizer}/${f}`))) {
    fail("textEncoder.tokenizer", `must name a folder whose ${SPIECE_FILE} or ${TOKENIZER_JSON_FILE} "files" lists`);
  }
  for (const w of [m.pixart.weights, m.textEncoder.weights]) w.files.forEach((f, i) => file(f, `weights.files[${i}]`));
  m.vae?.graphs.forEach((g, i) => file(g.file, `vae.graphs[${i}].file`));
  return m;
}
