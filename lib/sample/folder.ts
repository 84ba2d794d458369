/**
 * The output folder of one `fora sample` shard, and its manifest:
 *
 *   DIR/fora-sample.json          the run: format, settings, shard, --png; written first
 *   DIR/fora-sample.done.ndjson   one line per completed batch, appended after its files
 *   DIR/samples-AAAAAA-BBBBBB.npz the images AAAAAA..BBBBBB (arr_0 uint8 [n, H, W, C], arr_1 int64 labels)
 *   DIR/png/NNNNNN.png            with --png, image NNNNNN
 *
 * A batch counts as done only when its line is in the journal, and that line is written
 * after the batch's files are complete (each written atomically), so a run killed at any
 * moment leaves finished batches recorded, at most one batch's files unrecorded (they are
 * rewritten, under the same names, when the run resumes), and possibly a torn last
 * journal line (dropped on resume). Each line records the batch's file size and sha256,
 * every image's sha256 (of its pixel bytes) and class, and with --png each PNG's size
 * and sha256; a resumed run and `fora merge` check them.
 *
 * Nothing recorded names a file: every file name follows from the image indices, so a
 * manifest cannot make fora read or write outside its folder.
 */
import { join } from "node:path";
import { ForaError, printable } from "../errors.ts";
import { type Precision, PRECISIONS } from "../bundle/manifest.ts";
import { ioReason, sha256Hex, writeAll, writeBytesAtomic } from "./files.ts";
import { batchRange, classesOf, MAX_BATCH, MAX_CLASSES, MAX_NUM, MAX_SHARDS, type Shard, shardBatches } from "./plan.ts";

export const SAMPLE_FORMAT = "fora-samples";
export const SAMPLE_FORMAT_VERSION = 1;
export const RUN_FILE = "fora-sample.json";
export const JOURNAL_FILE = "fora-sample.done.ndjson";
export const PNG_DIR = "png";

/** Everything that decides the pixels and the image order; equal across the shards of one run. */
export interface SampleSettings {
  foraVersion: string;
  model: {
    /** sha256 of the bundle manifest's file list (paths, sizes, sha256s): the graphs and weights. */
    fingerprint: string;
    architecture: string;
    numClasses: number;
  };
  sampler: string;
  steps: number;
  cfg: number;
  cfgChannels: "ref" | "all";
  cacheInterval: number;
  /**
   * The cache policy: its name and parameters (absent in runs of fora before policies:
   * none), and each step's kind in execution order: F full, R reuse, D decided at run time.
   */
  plan: { policy: string; params?: Record<string, number>; kinds: string };
  precision: Precision;
  device: string;
  seed: number;
  num: number;
  batch: number;
  /** A class list cycled over the images, or "uniform": seeded uniform draws (plan.ts). */
  classes: number[] | "uniform";
}

/** The contents of fora-sample.json. */
export interface RunRecord {
  format: typeof SAMPLE_FORMAT;
  formatVersion: number;
  settings: SampleSettings;
  shard: Shard;
  png: boolean;
}

export interface FileCheck {
  bytes: number;
  sha256: string;
}

/** One journal line: a completed batch. */
export interface BatchRecord {
  first: number;
  count: number;
  /** The .npz file, checked. */
  npz: FileCheck;
  /** arr_0's shape: [count, height, width, channels]. */
  shape: [number, number, number, number];
  classes: number[];
  /** sha256 of each image's pixel bytes (H x W x C, uint8). */
  images: string[];
  /** With --png: each PNG file, checked; otherwise null. */
  png: FileCheck[] | null;
}

// ---- names ---------------------------------------------------------------------------------

function pad(n: number, num: number): string {
  return String(n).padStart(Math.max(6, String(Math.max(0, num - 1)).length), "0");
}

export function npzName(first: number, count: number, num: number): string {
  return `samples-${pad(first, num)}-${pad(first + count - 1, num)}.npz`;
}

export function pngName(index: number, num: number): string {
  return `${pad(index, num)}.png`;
}

/** Whether `name` is one of the files a sample folder holds (for stale temp clean-up). */
export function isSampleFileName(name: string): boolean {
  return name === RUN_FILE || name === JOURNAL_FILE || /^samples-\d+-\d+\.npz$/.test(name) || /^\d+\.png$/.test(name);
}

// ---- the run file --------------------------------------------------------------------------

type Obj = Record<string, unknown>;

/** Reads DIR/fora-sample.json; null when there is none. */
export async function readRunFile(dir: string): Promise<RunRecord | null> {
  const path = join(dir, RUN_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ForaError("io", `${path}: cannot read: ${ioReason(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ForaError(
      "io",
      `${path}: not valid JSON (${printable((e as Error).message)}); the folder is damaged: sample into a new --out folder`,
    );
  }
  return checkRunRecord(json, path);
}

export async function writeRunFile(dir: string, run: RunRecord): Promise<void> {
  await writeBytesAtomic(join(dir, RUN_FILE), "sample run file", new TextEncoder().encode(JSON.stringify(run, null, 2) + "\n"));
}

/** Checks a parsed fora-sample.json field by field; errors name the key. */
export function checkRunRecord(json: unknown, where: string): RunRecord {
  const fail = (key: string, msg: string): never => {
    throw new ForaError("io", `${where}: ${key ? `"${key}" ` : ""}${msg}`);
  };
  const obj = (v: unknown, key: string): Obj =>
    typeof v === "object" && v !== null && !Array.isArray(v) ? v as Obj : fail(key, "must be a JSON object");
  const int = (o: Obj, k: string, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number =>
    Number.isSafeInteger(o[k]) && (o[k] as number) >= min && (o[k] as number) <= max
      ? o[k] as number
      : fail(key, `must be a whole number from ${min} to ${max}`);
  const str = (o: Obj, k: string, key: string): string => typeof o[k] === "string" ? o[k] as string : fail(key, "must be a string");

  const r = obj(json, "");
  if (r.format !== SAMPLE_FORMAT) fail("format", `is ${JSON.stringify(r.format)}, expected "${SAMPLE_FORMAT}": not a fora sample folder`);
  const formatVersion = int(r, "formatVersion", "formatVersion", 1);
  if (formatVersion > SAMPLE_FORMAT_VERSION) {
    fail("formatVersion", `is ${formatVersion}, newer than this fora reads (${SAMPLE_FORMAT_VERSION}); upgrade fora`);
  }
  const s = obj(r.settings, "settings");
  const m = obj(s.model, "settings.model");
  const fingerprint = str(m, "fingerprint", "settings.model.fingerprint");
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) fail("settings.model.fingerprint", "must be 64 lowercase hex digits");
  const numClasses = int(m, "numClasses", "settings.model.numClasses", 1, MAX_CLASSES);
  const cfgChannels = s.cfgChannels;
  if (cfgChannels !== "ref" && cfgChannels !== "all") fail("settings.cfgChannels", `must be "ref" or "all"`);
  const precision = s.precision;
  if (!PRECISIONS.includes(precision as Precision)) {
    fail(
      "settings.precision",
      `must be one of ${PRECISIONS.map((p) => `"${p}"`).join(", ")}`,
    );
  }
  if (typeof s.cfg !== "number" || !Number.isFinite(s.cfg) || s.cfg < 1) fail("settings.cfg", "must be a number >= 1");
  let classes: number[] | "uniform";
  if (s.classes === "uniform") classes = "uniform";
  else if (
    Array.isArray(s.classes) && s.classes.length > 0 &&
    s.classes.every((c) => Number.isSafeInteger(c) && (c as number) >= 0 && (c as number) < numClasses)
  ) classes = s.classes as number[];
  else return fail("settings.classes", `must be "uniform" or a non-empty list of class ids below settings.model.numClasses`);
  const steps = int(s, "steps", "settings.steps", 1);
  const p = obj(s.plan, "settings.plan");
  const kinds = str(p, "kinds", "settings.plan.kinds");
  if (!/^[FRD]*$/.test(kinds) || kinds.length !== steps) fail("settings.plan.kinds", "must be one F, R or D per step");
  let params: Record<string, number> | undefined;
  if (p.params !== undefined) {
    params = obj(p.params, "settings.plan.params") as Record<string, number>;
    if (!Object.values(params).every((v) => typeof v === "number" && Number.isFinite(v))) {
      fail("settings.plan.params", "must map parameter names to numbers");
    }
  }
  const settings: SampleSettings = {
    foraVersion: str(s, "foraVersion", "settings.foraVersion"),
    model: { fingerprint, architecture: str(m, "architecture", "settings.model.architecture"), numClasses },
    sampler: str(s, "sampler", "settings.sampler"),
    steps,
    cfg: s.cfg as number,
    cfgChannels: cfgChannels as "ref" | "all",
    cacheInterval: int(s, "cacheInterval", "settings.cacheInterval", 1, steps),
    plan: { policy: str(p, "policy", "settings.plan.policy"), ...(params ? { params } : {}), kinds },
    precision: precision as Precision,
    device: str(s, "device", "settings.device"),
    seed: int(s, "seed", "settings.seed", 0),
    num: int(s, "num", "settings.num", 1, MAX_NUM),
    batch: int(s, "batch", "settings.batch", 1, MAX_BATCH),
    classes,
  };
  const sh = obj(r.shard, "shard");
  const count = int(sh, "count", "shard.count", 1, MAX_SHARDS);
  const shard = { index: int(sh, "index", "shard.index", 0, count - 1), count };
  if (typeof r.png !== "boolean") fail("png", "must be true or false");
  return { format: SAMPLE_FORMAT, formatVersion, settings, shard, png: r.png as boolean };
}

/**
 * The first difference between two runs' settings, in words ("cfg: 1.5 in a, 4 in b"),
 * or null when they agree.
 */
export function settingsDiff(a: SampleSettings, b: SampleSettings, aName: string, bName: string): string | null {
  const flat = (s: SampleSettings): [string, string][] => [
    ["fora version", s.foraVersion],
    ["model (bundle files)", `${s.model.architecture} ${s.model.fingerprint.slice(0, 12)}`],
    ["--sampler", s.sampler],
    ["--steps", String(s.steps)],
    ["--cfg", String(s.cfg)],
    ["--cfg-channels", s.cfgChannels],
    ["--cache-interval", String(s.cacheInterval)],
    ["cache plan", `${s.plan.policy} ${JSON.stringify(s.plan.params ?? {})} ${s.plan.kinds}`],
    ["--precision", s.precision],
    ["device", s.device],
    ["--seed", String(s.seed)],
    ["--num", String(s.num)],
    ["--batch", String(s.batch)],
    ["--class", s.classes === "uniform" ? "uniform (none given)" : s.classes.join(",")],
  ];
  const fa = flat(a), fb = flat(b);
  for (let i = 0; i < fa.length; i++) {
    if (fa[i][1] !== fb[i][1]) return `${fa[i][0]} is ${fa[i][1]} in ${aName} but ${fb[i][1]} in ${bName}`;
  }
  return null;
}

// ---- the journal ---------------------------------------------------------------------------

export interface Journal {
  /** Valid records by their batch number, the first record of a batch kept. */
  records: Map<number, BatchRecord>;
  /** Lines that were not valid records (a torn last line after a kill, or damage). */
  dropped: number;
  /** The text does not end with a newline: the next append would run into the last line. */
  unterminated: boolean;
}

/** Reads DIR's journal, keeping the lines that are valid records of `run`'s batches. */
export async function readJournal(dir: string, run: RunRecord): Promise<Journal> {
  const path = join(dir, JOURNAL_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { records: new Map(), dropped: 0, unterminated: false };
    throw new ForaError("io", `${path}: cannot read: ${ioReason(e)}`);
  }
  return parseJournal(text, run);
}

/** The journal's text as records; see readJournal. */
export function parseJournal(text: string, run: RunRecord): Journal {
  const records = new Map<number, BatchRecord>();
  let dropped = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let rec: BatchRecord | null = null;
    try {
      rec = checkBatchRecord(JSON.parse(line), run);
    } catch {
      rec = null;
    }
    if (rec === null) dropped++;
    else {
      const j = rec.first / run.settings.batch;
      if (!records.has(j)) records.set(j, rec);
      else dropped++;
    }
  }
  return { records, dropped, unterminated: text.length > 0 && !text.endsWith("\n") };
}

/** A journal line as a record of one of `run`'s batches, or null when it is not one. */
export function checkBatchRecord(json: unknown, run: RunRecord): BatchRecord | null {
  const { num, batch, numClassesOf } = { ...run.settings, numClassesOf: run.settings.model.numClasses };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const r = json as Obj;
  const isInt = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  const isHash = (v: unknown) => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
  const isFile = (v: unknown): v is FileCheck =>
    typeof v === "object" && v !== null && isInt((v as Obj).bytes, 1) && isHash((v as Obj).sha256);
  if (!isInt(r.first, 0) || !isInt(r.count, 1)) return null;
  const first = r.first as number, count = r.count as number;
  if (first % batch !== 0) return null;
  const j = first / batch;
  const { start, end } = shardBatches(num, batch, run.shard);
  if (j < start || j >= end) return null;
  const range = batchRange(num, batch, j);
  if (range.count !== count) return null;
  if (!isFile(r.npz)) return null;
  const shape = r.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || shape[0] !== count || !shape.slice(1).every((d) => isInt(d, 1))) return null;
  if (shape[3] !== 1 && shape[3] !== 3) return null;
  // Sizes from the line itself bound the work: the classes are drawn only for a line that lists `count` of them.
  if (!Array.isArray(r.classes) || r.classes.length !== count) return null;
  const want = classesOf(run.settings.classes, numClassesOf, run.settings.seed, range);
  if (r.classes.some((c, i) => c !== want[i])) return null;
  if (!Array.isArray(r.images) || r.images.length !== count || !r.images.every(isHash)) return null;
  let png: FileCheck[] | null = null;
  if (run.png) {
    if (!Array.isArray(r.png) || r.png.length !== count || !r.png.every(isFile)) return null;
    png = (r.png as FileCheck[]).map((p) => ({ bytes: p.bytes, sha256: p.sha256 }));
  } else if (r.png !== null) return null;
  return {
    first,
    count,
    npz: { bytes: r.npz.bytes, sha256: r.npz.sha256 },
    shape: shape as [number, number, number, number],
    classes: want,
    images: [...r.images] as string[],
    png,
  };
}

/** Appends one record as a line. */
export async function appendJournal(dir: string, rec: BatchRecord): Promise<void> {
  const path = join(dir, JOURNAL_FILE);
  try {
    const file = await Deno.open(path, { append: true, create: true, mode: 0o644 });
    try {
      await writeAll(file, new TextEncoder().encode(JSON.stringify(rec) + "\n"));
    } finally {
      file.close();
    }
  } catch (e) {
    throw new ForaError("io", `${path}: could not record a finished batch: ${ioReason(e)}`);
  }
}

/** Replaces the journal with exactly `records`, in batch order (drops torn or stale lines). */
export async function rewriteJournal(dir: string, records: Iterable<BatchRecord>): Promise<void> {
  const lines = [...records].sort((a, b) => a.first - b.first).map((r) => JSON.stringify(r) + "\n").join("");
  await writeBytesAtomic(join(dir, JOURNAL_FILE), "sample journal", new TextEncoder().encode(lines));
}

// ---- checking a batch's files --------------------------------------------------------------

/** Reads a file fully when its size is `want.bytes` and its sha256 matches; else says why not. */
export async function readChecked(path: string, want: FileCheck): Promise<{ bytes: Uint8Array } | { problem: string }> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { problem: `${path} is missing` };
    return { problem: `${path}: cannot read: ${ioReason(e)}` };
  }
  if (!st.isFile) return { problem: `${path} is not a regular file` };
  if (st.size !== want.bytes) return { problem: `${path} has ${st.size} bytes, ${want.bytes} were recorded` };
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    return { problem: `${path}: cannot read: ${ioReason(e)}` };
  }
  if (bytes.length !== want.bytes || sha256Hex(bytes) !== want.sha256) return { problem: `${path} does not match its recorded sha256` };
  return { bytes };
}

/** Checks a recorded batch's files (the .npz, and the PNGs with --png); null when all match. */
export async function verifyBatch(dir: string, run: RunRecord, rec: BatchRecord): Promise<string | null> {
  const npz = await readChecked(join(dir, npzName(rec.first, rec.count, run.settings.num)), rec.npz);
  if ("problem" in npz) return npz.problem;
  if (rec.png) {
    for (let b = 0; b < rec.count; b++) {
      const png = await readChecked(join(dir, PNG_DIR, pngName(rec.first + b, run.settings.num)), rec.png[b]);
      if ("problem" in png) return png.problem;
    }
  }
  return null;
}
