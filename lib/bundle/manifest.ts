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
 * size and sha256; `readManifest` refuses a bundle whose files are missing, resized, or
 * point outside the folder.
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { isInside } from "../io/paths.ts";
import type { DitConfig, Naming } from "../models/dit/config.ts";
import type { DitGraphKind } from "../models/dit/graphs.ts";
import type { VaeConfig } from "../models/vae/config.ts";
import {
  bool,
  count,
  described,
  list,
  MODEL_LIMITS,
  num,
  obj,
  oneOf,
  posInt,
  schemaChecker,
  str,
  transformerShapeSchema,
} from "./schema.ts";

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

// ---- hashing -----------------------------------------------------------------------

const HASH_CHUNK = 4 << 20;

/** sha256 of a file, streamed in 4 MiB chunks (weights can be many GB). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(HASH_CHUNK);
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

// ---- paths -------------------------------------------------------------------------

/**
 * Manifest paths are plain relative paths: "/"-separated, no empty, "." or ".." segment,
 * no backslash or NUL, not absolute. ONNX Runtime refuses external data outside the
 * model's folder, and a manifest must not make fora read or hash files elsewhere.
 */
export function isSafeRelativePath(p: string): boolean {
  if (p === "" || p.startsWith("/") || /[\\\0]/.test(p) || /^[A-Za-z]:/.test(p)) return false;
  return p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

// ---- reading -----------------------------------------------------------------------

/** Reads `dir/manifest.json`, checks its structure, and checks every file it lists. */
export async function readManifest(dir: string): Promise<Manifest> {
  const { root, path, json } = await readManifestJson(dir);
  const manifest = checkManifest(json, path);
  await checkFiles(root, manifest);
  return manifest;
}

/** `dir/manifest.json` parsed, not yet checked (shared by the DiT and PixArt readers). */
export async function readManifestJson(dir: string): Promise<{ root: string; path: string; json: unknown }> {
  const root = resolve(dir);
  const info = await Deno.stat(root).catch((e) => {
    if (e instanceof Deno.errors.NotFound) throw bundleError(root, "no such folder");
    throw bundleError(root, `cannot read: ${(e as Error).message}`);
  });
  if (!info.isDirectory) throw bundleError(root, "is not a folder; pass the bundle folder that fora convert wrote");
  const path = join(root, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw bundleError(
        root,
        `no ${MANIFEST_FILE}: not a fora bundle, or fora convert did not finish; run fora convert SRC ${dir}`,
      );
    }
    throw bundleError(path, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bundleError(path, `not valid JSON (${(e as Error).message})`);
  }
  return { root, path, json };
}

/** Re-hashes every file and compares with the manifest; returns the paths that differ. */
export async function verifyBundle(dir: string, m: { files: FileEntry[] }): Promise<string[]> {
  const root = resolve(dir);
  const bad: string[] = [];
  for (const f of m.files) {
    if (await sha256File(join(root, f.path)) !== f.sha256) bad.push(f.path);
  }
  return bad;
}

function bundleError(where: string, message: string): ForaError {
  // Messages may quote the manifest's text (JSON.parse does): escape its control characters
  // (newlines, terminal escape sequences) so that the error stays one printable line.
  // deno-lint-ignore no-control-regex
  const printable = message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return new ForaError("bundle", `${where}: ${printable}`);
}

/** Every listed file is there, a regular file inside the folder, of the recorded size. */
export async function checkFiles(root: string, m: { files: FileEntry[] }): Promise<void> {
  const realRoot = await Deno.realPath(root);
  for (const f of m.files) {
    const abs = join(root, ...f.path.split("/"));
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(abs);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw bundleError(root, `${f.path} is listed in ${MANIFEST_FILE} but missing; the bundle is incomplete, re-run fora convert`);
      }
      throw bundleError(root, `${f.path}: cannot read: ${(e as Error).message}`);
    }
    // Resolved whole: a link anywhere on the path (weights/ linked to another folder) counts, not only the last one.
    const target = await Deno.realPath(abs).catch(() => undefined);
    if (target === undefined || !isInside(realRoot, target)) {
      throw bundleError(
        root,
        `${f.path} leads outside the bundle folder through a symbolic link; fora reads a bundle only from inside its folder; re-run fora convert`,
      );
    }
    if (st.isSymlink) st = await Deno.stat(abs);
    if (!st.isFile) throw bundleError(root, `${f.path} is not a regular file`);
    if (st.size !== f.size) {
      throw bundleError(
        root,
        `${f.path} has ${st.size} bytes but ${MANIFEST_FILE} records ${f.size}; the file was changed or truncated, re-run fora convert`,
      );
    }
  }
}

// ---- structure -----------------------------------------------------------------------

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
