/**
 * What a `fora sample` run produces, as pure arithmetic over image indices: the batches of
 * the whole run, the share of a shard, and the class of each image.
 *
 * Batches: image indices 0 .. num-1 are cut into nb = ceil(num / batch) batches; batch j
 * holds images j*batch .. min((j+1)*batch, num) - 1. Batches are the unit of work, of files
 * and of resumption, and they are the same whatever the sharding, so a sharded run samples
 * exactly the batches an unsharded run does.
 *
 * Shards: shard i of n takes batches floor(i*nb/n) .. floor((i+1)*nb/n) - 1: contiguous,
 * disjoint, together all of them, sizes differing by at most one batch (shards beyond the
 * number of batches get none).
 *
 * Classes: given a list, image k gets list[k mod length]. Otherwise class k is drawn
 * uniformly from its own stream: the PCG32 generator createRng(sampleSeed(seed, k),
 * CLASS_STREAM) (lib/random; CLASS_STREAM differs from the noise's stream), first output r
 * of it with r >= 2^32 mod K (rejection, so every class is exactly equally likely), class
 * r mod K. Any image's class follows from (seed, k) alone.
 */
import { ForaError } from "../errors.ts";
import { createRng, nextUint32, sampleSeed } from "../random/mod.ts";

/** Shard i of n: 0 <= index < count. */
export interface Shard {
  index: number;
  count: number;
}

/** A contiguous run of images: first, first+1, ..., first+count-1. */
export interface ImageRange {
  first: number;
  count: number;
}

/** Largest --num: 10^9 images (file names and arithmetic stay small). */
export const MAX_NUM = 1_000_000_000;
/** Largest --batch. */
export const MAX_BATCH = 65_536;
/** Class counts beyond this are not a real model (ImageNet has 1000); it also keeps classOf's draw finite. */
export const MAX_CLASSES = 1_000_000;
/** Largest shard count. */
export const MAX_SHARDS = 1_000_000;
/** The PCG32 stream of the class draws ("class" in ASCII); the noise uses DEFAULT_STREAM (54). */
export const CLASS_STREAM = 0x636c617373n;

/** Parses `i/n` (e.g. `3/8`); throws ForaError("usage") naming --shard. */
export function parseShard(text: string): Shard {
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(text.trim());
  if (!m) throw new ForaError("usage", `--shard "${text}" is not i/n (e.g. 0/4 for the first of four shards)`);
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) throw new ForaError("usage", `--shard ${text}: the shard count must be from 1 to ${MAX_SHARDS}`);
  if (index >= count) {
    throw new ForaError("usage", `--shard ${text}: the index must be from 0 to ${count - 1} (shards count from 0)`);
  }
  return { index, count };
}

export function formatShard(s: Shard): string {
  return `${s.index}/${s.count}`;
}

export function batchCount(num: number, batch: number): number {
  return Math.ceil(num / batch);
}

/** The images of batch j. */
export function batchRange(num: number, batch: number, j: number): ImageRange {
  const first = j * batch;
  return { first, count: Math.min(batch, num - first) };
}

/** Batch numbers [start, end) of a shard. */
export function shardBatches(num: number, batch: number, shard: Shard): { start: number; end: number } {
  const nb = BigInt(batchCount(num, batch));
  const at = (i: number) => Number((BigInt(i) * nb) / BigInt(shard.count));
  return { start: at(shard.index), end: at(shard.index + 1) };
}

/** The images of a shard, as one range. */
export function shardImages(num: number, batch: number, shard: Shard): ImageRange {
  const { start, end } = shardBatches(num, batch, shard);
  const first = Math.min(num, start * batch);
  return { first, count: Math.min(num, end * batch) - first };
}

/** Class of image `index`: from the list when given, else the seeded uniform draw. */
export function classOf(classes: readonly number[] | "uniform", numClasses: number, seed: number, index: number): number {
  if (classes !== "uniform") return classes[index % classes.length];
  if (!Number.isSafeInteger(numClasses) || numClasses < 1 || numClasses > MAX_CLASSES) {
    throw new RangeError(`classOf: ${numClasses} classes; expected 1 to ${MAX_CLASSES}`);
  }
  const rng = createRng(sampleSeed(seed, index), CLASS_STREAM);
  const reject = 2 ** 32 % numClasses;
  for (;;) {
    const r = nextUint32(rng);
    if (r >= reject) return r % numClasses;
  }
}

/** Classes of images first .. first+count-1. */
export function classesOf(classes: readonly number[] | "uniform", numClasses: number, seed: number, range: ImageRange): number[] {
  return Array.from({ length: range.count }, (_, b) => classOf(classes, numClasses, seed, range.first + b));
}
