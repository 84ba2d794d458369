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

type Obj = Record<string, unknown>;

/** Checks a parsed manifest field by field; each message names the offending key. */
export function checkManifest(json: unknown, where: string): Manifest {
  const fail = (key: string, msg: string): never => {
    throw bundleError(where, `${key ? `"${key}" ` : ""}${msg}`);
  };
  const obj = (v: unknown, key: string): Obj =>
    typeof v === "object" && v !== null && !Array.isArray(v) ? v as Obj : fail(key, "must be a JSON object");
  const str = (o: Obj, k: string, key: string): string => typeof o[k] === "string" ? o[k] as string : fail(key, "must be a string");
  const oneOf = <T extends string>(o: Obj, k: string, key: string, allowed: readonly T[]): T =>
    allowed.includes(o[k] as T) ? o[k] as T : fail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
  const count = (o: Obj, k: string, key: string): number =>
    Number.isSafeInteger(o[k]) && (o[k] as number) >= 0 ? o[k] as number : fail(key, "must be a non-negative integer");
  const posInt = (o: Obj, k: string, key: string): number =>
    Number.isSafeInteger(o[k]) && (o[k] as number) > 0 ? o[k] as number : fail(key, "must be a positive integer");
  const num = (o: Obj, k: string, key: string): number =>
    typeof o[k] === "number" && Number.isFinite(o[k]) ? o[k] as number : fail(key, "must be a number");
  const bool = (o: Obj, k: string, key: string): boolean =>
    typeof o[k] === "boolean" ? o[k] as boolean : fail(key, "must be true or false");
  const arr = (o: Obj, k: string, key: string): unknown[] => Array.isArray(o[k]) ? o[k] as unknown[] : fail(key, "must be a list");
  const classNames = (v: unknown, n: number): string[] | null => {
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "string")) {
      fail("dit.classNames", `must be null or a list of ${n} names`);
    }
    return v as string[];
  };
  const relPath = (v: unknown, key: string): string => {
    if (typeof v !== "string") fail(key, "must be a string");
    if (!isSafeRelativePath(v as string)) {
      fail(key, `is ${JSON.stringify(v)}: paths must be relative, inside the bundle folder (no absolute paths, no "..")`);
    }
    return v as string;
  };

  const m = obj(json, "");
  if (m.format !== BUNDLE_FORMAT) {
    fail("format", `is ${JSON.stringify(m.format)}, expected ${JSON.stringify(BUNDLE_FORMAT)}: not a fora bundle manifest`);
  }
  const version = posInt(m, "formatVersion", "formatVersion");
  if (version > BUNDLE_FORMAT_VERSION) {
    fail("formatVersion", `is ${version}, newer than this fora reads (${BUNDLE_FORMAT_VERSION}); upgrade fora`);
  }
  const foraVersion = str(m, "foraVersion", "foraVersion");
  if (m.architecture === "pixart") fail("architecture", `is "pixart": a PixArt-alpha bundle, which only fora generate and fora info read`);
  if (m.architecture !== "dit") fail("architecture", `is ${JSON.stringify(m.architecture)}; this fora reads "dit" and "pixart" bundles`);
  const sourceObj = obj(m.source, "source");
  const source = {
    layout: oneOf(sourceObj, "layout", "source.layout", ["diffusers", "original"] as const),
    path: str(sourceObj, "path", "source.path"),
  };
  const space = oneOf(m, "space", "space", ["latent", "pixel"] as const);

  const files = arr(m, "files", "files").map((v, i) => {
    const f = obj(v, `files[${i}]`);
    const sha = str(f, "sha256", `files[${i}].sha256`);
    if (!/^[0-9a-f]{64}$/.test(sha)) fail(`files[${i}].sha256`, "must be 64 lowercase hex digits");
    return { path: relPath(f.path, `files[${i}].path`), size: count(f, "size", `files[${i}].size`), sha256: sha };
  });
  const listed = new Set<string>();
  for (const f of files) {
    if (f.path === MANIFEST_FILE) fail("files", `must not list ${MANIFEST_FILE} itself`);
    if (listed.has(f.path)) fail("files", `lists ${f.path} twice`);
    listed.add(f.path);
  }
  const listedPath = (v: unknown, key: string): string => {
    const p = relPath(v, key);
    if (!listed.has(p)) fail(key, `names ${p}, which "files" does not list`);
    return p;
  };
  const weights = (v: unknown, key: string): WeightsEntry => {
    const w = obj(v, key);
    const dtypes = arr(w, "dtypes", `${key}.dtypes`);
    if (!dtypes.every((d) => typeof d === "string")) fail(`${key}.dtypes`, "must be a list of strings");
    return {
      files: arr(w, "files", `${key}.files`).map((p, i) => listedPath(p, `${key}.files[${i}]`)),
      dtypes: dtypes as string[],
      tensors: count(w, "tensors", `${key}.tensors`),
      parameters: count(w, "parameters", `${key}.parameters`),
      bytes: count(w, "bytes", `${key}.bytes`),
    };
  };

  const ditObj = obj(m.dit, "dit");
  const naming = oneOf(ditObj, "naming", "dit.naming", ["original", "diffusers"] as const);
  const c = obj(ditObj.config, "dit.config");
  const k = (name: string) => `dit.config.${name}`;
  const config: DitConfig = {
    depth: posInt(c, "depth", k("depth")),
    hiddenSize: posInt(c, "hiddenSize", k("hiddenSize")),
    numHeads: posInt(c, "numHeads", k("numHeads")),
    patchSize: posInt(c, "patchSize", k("patchSize")),
    inputSize: posInt(c, "inputSize", k("inputSize")),
    inChannels: posInt(c, "inChannels", k("inChannels")),
    numClasses: posInt(c, "numClasses", k("numClasses")),
    learnSigma: bool(c, "learnSigma", k("learnSigma")),
    naming: oneOf(c, "naming", k("naming"), ["original", "diffusers"] as const),
    freqDivisor: num(c, "freqDivisor", k("freqDivisor")),
    mlpNormEps: num(c, "mlpNormEps", k("mlpNormEps")),
  };
  if (config.naming !== naming) fail("dit.naming", `is ${naming} but dit.config.naming is ${config.naming}`);
  const cv = obj(ditObj.conventions, "dit.conventions");
  const ck = (name: string) => `dit.conventions.${name}`;
  const conventions: DitConventions = {
    timestepFreqDim: posInt(cv, "timestepFreqDim", ck("timestepFreqDim")),
    freqDivisor: num(cv, "freqDivisor", ck("freqDivisor")),
    normEps: num(cv, "normEps", ck("normEps")),
    mlpNormEps: num(cv, "mlpNormEps", ck("mlpNormEps")),
    nullClass: count(cv, "nullClass", ck("nullClass")),
    outChannels: posInt(cv, "outChannels", ck("outChannels")),
    tokens: posInt(cv, "tokens", ck("tokens")),
  };
  const ditGraphs = arr(ditObj, "graphs", "dit.graphs").flatMap((v, i): DitGraphEntry[] => {
    const key = `dit.graphs[${i}]`;
    const g = obj(v, key);
    // Bundles converted before partial reuse got its two lean graphs list one "partial" graph;
    // they still run every other policy, and partial asks for a re-conversion (ditGraphPath).
    if (g.kind === "partial") return [];
    return [{
      file: listedPath(g.file, `${key}.file`),
      kind: oneOf(g, "kind", `${key}.kind`, DIT_GRAPH_KINDS),
      guidance: oneOf(g, "guidance", `${key}.guidance`, GUIDANCES),
      precision: oneOf(g, "precision", `${key}.precision`, PRECISIONS),
      attention: oneOf(g, "attention", `${key}.attention`, ["portable", "fused"] as const),
    }];
  });
  if (ditGraphs.length === 0) fail("dit.graphs", "is empty: the bundle has no DiT graph");

  const vaeConfig = (o: Obj): VaeConfig => {
    const k = (name: string) => `vae.config.${name}`;
    const blocks = arr(o, "blockOutChannels", k("blockOutChannels"));
    if (blocks.length === 0 || !blocks.every((b) => Number.isSafeInteger(b) && (b as number) > 0)) {
      fail(k("blockOutChannels"), "must be a non-empty list of positive integers");
    }
    return {
      blockOutChannels: blocks as number[],
      layersPerBlock: posInt(o, "layersPerBlock", k("layersPerBlock")),
      normNumGroups: posInt(o, "normNumGroups", k("normNumGroups")),
      latentChannels: posInt(o, "latentChannels", k("latentChannels")),
      outChannels: posInt(o, "outChannels", k("outChannels")),
      scalingFactor: num(o, "scalingFactor", k("scalingFactor")),
      shiftFactor: num(o, "shiftFactor", k("shiftFactor")),
      usePostQuantConv: bool(o, "usePostQuantConv", k("usePostQuantConv")),
      midBlockAddAttention: bool(o, "midBlockAddAttention", k("midBlockAddAttention")),
    };
  };

  let vae: Manifest["vae"] = null;
  if (m.vae !== null) {
    const v = obj(m.vae, "vae");
    vae = {
      config: vaeConfig(obj(v.config, "vae.config")),
      weights: weights(v.weights, "vae.weights"),
      graphs: arr(v, "graphs", "vae.graphs").map((e, i) => {
        const key = `vae.graphs[${i}]`;
        const g = obj(e, key);
        const size = arr(g, "latentSize", `${key}.latentSize`);
        if (size.length !== 2 || !size.every((d) => Number.isSafeInteger(d) && (d as number) > 0)) {
          fail(`${key}.latentSize`, "must be [height, width]");
        }
        return {
          file: listedPath(g.file, `${key}.file`),
          precision: oneOf(g, "precision", `${key}.precision`, FLOAT_PRECISIONS),
          latentSize: size as [number, number],
        };
      }),
    };
    if (space === "pixel") fail("vae", "must be null for a pixel-space model");
  }

  return {
    format: BUNDLE_FORMAT,
    formatVersion: version,
    foraVersion,
    architecture: "dit",
    source,
    space,
    dit: {
      classNames: classNames(ditObj.classNames, config.numClasses),
      naming,
      config,
      conventions,
      weights: weights(ditObj.weights, "dit.weights"),
      graphs: ditGraphs,
    },
    vae,
    files,
  };
}
