/**
 * `fora merge DIR... --out FILE.npz`: the shard folders of one `fora sample` run joined into
 * one .npz in image order: arr_0 uint8 [num, H, W, C] and arr_1 int64 labels [num], the
 * layout of the ADM evaluation suite's sample batches and of DiT's sample_ddp.py.
 *
 * Refuses, naming the folder and what to do, a set that is not exactly one run: folders
 * whose settings differ, a shard given twice or missing, a shard with batches not done,
 * a batch file that does not match its recorded size, sha256, shape, labels or per-image
 * sha256s. The output is written atomically and streamed (a 50,000-image 256x256 run is
 * 9.8 GB): a failed merge leaves no file.
 */
import { basename, dirname, extname, join } from "node:path";
import { ForaError } from "../errors.ts";
import { sha256Hex, writeAtomicWith } from "./files.ts";
import { outputLocation } from "../io/paths.ts";
import {
  type BatchRecord,
  isSampleFileName,
  npzName,
  readChecked,
  readJournal,
  readRunFile,
  RUN_FILE,
  type RunRecord,
  settingsDiff,
} from "./folder.ts";
import { npzWriter, readNpz } from "./npz.ts";
import { batchCount, batchRange, formatShard, shardBatches } from "./plan.ts";

export interface MergeOptions {
  /** Replace FILE.npz when it exists. */
  force?: boolean;
  /** Write ZIP64 records even when not needed (tests). */
  forceZip64?: boolean;
}

export interface MergeResult {
  out: string;
  images: number;
  shards: number;
  /** arr_0's shape. */
  shape: [number, number, number, number];
}

interface Shard {
  dir: string;
  run: RunRecord;
  records: Map<number, BatchRecord>;
}

export async function merge(dirs: string[], out: string, opts: MergeOptions = {}): Promise<MergeResult> {
  if (dirs.length === 0) throw new ForaError("usage", "give at least one shard folder (written by fora sample --out DIR)");
  if (extname(out).toLowerCase() !== ".npz") throw new ForaError("usage", `--out ${out}: the merged file must end in .npz`);
  if (!opts.force && await Deno.lstat(out).then(() => true, () => false)) {
    throw new ForaError("usage", `--out ${out} already exists; pass --force to replace it`);
  }
  await checkNotAnInput(out, dirs);
  const shards: Shard[] = [];
  for (const dir of dirs) {
    const run = await readRunFile(dir);
    if (!run) {
      const exists = await Deno.stat(dir).then((s) => s.isDirectory, () => false);
      throw new ForaError("io", exists ? `${dir} has no ${RUN_FILE}: not a folder written by fora sample` : `${dir}: no such folder`);
    }
    shards.push({ dir, run, records: (await readJournal(dir, run)).records });
  }

  // One run: the same settings everywhere, each shard of the same count exactly once.
  const first = shards[0];
  const { settings } = first.run;
  const n = first.run.shard.count;
  const byIndex = new Map<number, Shard>();
  for (const s of shards) {
    const diff = settingsDiff(first.run.settings, s.run.settings, first.dir, s.dir);
    if (diff) throw new ForaError("io", `the folders are not shards of one run: ${diff}`);
    if (s.run.shard.count !== n) {
      throw new ForaError(
        "io",
        `the folders are not shards of one run: ${first.dir} is shard ${formatShard(first.run.shard)} but ${s.dir} is shard ${
          formatShard(s.run.shard)
        }`,
      );
    }
    const twin = byIndex.get(s.run.shard.index);
    if (twin) throw new ForaError("usage", `shard ${formatShard(s.run.shard)} is given twice: ${twin.dir} and ${s.dir}`);
    byIndex.set(s.run.shard.index, s);
  }
  const missing = [...Array(n).keys()].filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    const list = missing.slice(0, 8).map((i) => `${i}/${n}`).join(", ") + (missing.length > 8 ? `, ... (${missing.length} in all)` : "");
    throw new ForaError("io", `shards missing: ${list}; pass every shard's folder (fora sample --shard i/${n} wrote them)`);
  }
  // Complete: every batch of every shard recorded.
  const { num, batch } = settings;
  for (const s of byIndex.values()) {
    const { start, end } = shardBatches(num, batch, s.run.shard);
    const todo = [];
    for (let j = start; j < end; j++) if (!s.records.has(j)) todo.push(j);
    if (todo.length > 0) {
      const r = batchRange(num, batch, todo[0]);
      throw new ForaError(
        "io",
        `${s.dir}: shard ${formatShard(s.run.shard)} is incomplete: ${todo.length} of ${end - start} batches not done ` +
          `(the first from image ${r.first}); run the same fora sample command again to finish it`,
      );
    }
  }

  const nb = batchCount(num, batch);
  const owner = new Map<number, [Shard, BatchRecord]>();
  for (const s of byIndex.values()) {
    const { start, end } = shardBatches(num, batch, s.run.shard);
    for (let j = start; j < end; j++) owner.set(j, [s, s.records.get(j)!]);
  }
  const recordOf = (j: number): [Shard, BatchRecord] => owner.get(j)!;
  const [, rec0] = recordOf(0);
  const [, H, W, C] = rec0.shape;
  for (let j = 0; j < nb; j++) {
    const [s, rec] = recordOf(j);
    if (rec.shape[1] !== H || rec.shape[2] !== W || rec.shape[3] !== C) {
      throw new ForaError(
        "io",
        `${s.dir}: images ${rec.first}.. are ${rec.shape.slice(1).join("x")}, the first are ${H}x${W}x${C}; the set is inconsistent`,
      );
    }
  }

  await writeAtomicWith(out, "merged .npz", async (file) => {
    const w = npzWriter(file, { forceZip64: opts.forceZip64 });
    await w.begin("arr_0", "|u1", [num, H, W, C]);
    for (let j = 0; j < nb; j++) {
      const [s, rec] = recordOf(j);
      await w.write(await checkedImages(s, rec));
    }
    await w.begin("arr_1", "<i8", [num]);
    for (let j = 0; j < nb; j++) {
      const [, rec] = recordOf(j);
      await w.write(new Uint8Array(new BigInt64Array(rec.classes.map(BigInt)).buffer));
    }
    await w.finish();
  });
  return { out, images: num, shards: n, shape: [num, H, W, C] };
}

/** Refuses an --out that is one of the batch files being merged (--force would replace it). */
async function checkNotAnInput(out: string, dirs: string[]): Promise<void> {
  const target = await outputLocation(out);
  if (!isSampleFileName(basename(target))) return;
  for (const dir of dirs) {
    if (dirname(target) === await Deno.realPath(dir).catch(() => null)) {
      throw new ForaError(
        "usage",
        `--out ${out} is a batch file of ${dir}, one of the folders being merged; write the merged file elsewhere`,
      );
    }
  }
}

/** A batch's image bytes, after checking its file against everything recorded. */
async function checkedImages(s: Shard, rec: BatchRecord): Promise<Uint8Array> {
  const path = join(s.dir, npzName(rec.first, rec.count, s.run.settings.num));
  const fix = `run the same fora sample command in ${s.dir} again: it samples damaged batches anew`;
  const read = await readChecked(path, rec.npz);
  if ("problem" in read) throw new ForaError("io", `${read.problem}; ${fix}`);
  const arrays = readNpz(read.bytes, path);
  const images = arrays.get("arr_0"), labels = arrays.get("arr_1");
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  if (!images || images.dtype !== "|u1" || !same(images.shape, rec.shape)) {
    throw new ForaError("io", `${path}: arr_0 is not uint8 [${rec.shape.join(", ")}] as recorded; ${fix}`);
  }
  if (!labels || labels.dtype !== "<i8" || !same(labels.shape, [rec.count])) {
    throw new ForaError("io", `${path}: arr_1 is not int64 [${rec.count}] labels as recorded; ${fix}`);
  }
  const got = new BigInt64Array(labels.bytes.slice().buffer);
  if (rec.classes.some((c, i) => BigInt(c) !== got[i])) {
    throw new ForaError("io", `${path}: labels differ from the recorded classes; ${fix}`);
  }
  const per = rec.shape[1] * rec.shape[2] * rec.shape[3];
  for (let b = 0; b < rec.count; b++) {
    if (sha256Hex(images.bytes.subarray(b * per, (b + 1) * per)) !== rec.images[b]) {
      throw new ForaError("io", `${path}: image ${rec.first + b} does not match its recorded sha256; ${fix}`);
    }
  }
  return images.bytes;
}
