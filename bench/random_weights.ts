/**
 * Random weights at real shapes for the benchmarks (speed and memory do not depend on weight
 * values): whatever a graph builder asks of its WeightSource is recorded (names and shapes) by
 * building once against a stand-in, then written as a sharded safetensors checkpoint, one shard
 * of at most `shardBytes` at a time, so that writing multi-GB models never holds them in memory.
 */
import { basename, join } from "node:path";
import type { ExternalTensor, GraphData } from "../lib/onnx/builder.ts";
import { loadCheckpoint } from "../lib/weights/checkpoint.ts";
import { type WeightSource, weightSource } from "../lib/weights/source.ts";
import { type WritableTensor, writeSafetensors } from "../lib/weights/safetensors.ts";

export interface RandomWeightsOptions {
  /** Tensors the model may or may not have (the stand-in answers `has`). */
  has?: (name: string) => boolean;
  /** Shapes of tensors the builder asks for without one. */
  hints?: Record<string, number[]>;
  fallback?: number[];
  /** File dtype: F32 (default) or F16. */
  dtype?: "F32" | "F16";
  shardBytes?: number;
}

export async function randomWeights(
  folder: string,
  build: (src: WeightSource) => GraphData | Record<string, GraphData>,
  opts: RandomWeightsOptions = {},
): Promise<WeightSource> {
  const shapes = new Map<string, number[]>();
  let offset = 0; // distinct offsets: the graph builder caches weights by location and range
  const stand: WeightSource = {
    origin: "stand-in",
    has: opts.has ?? (() => false),
    get(name, shape) {
      const s = shape ?? opts.hints?.[name] ?? opts.fallback;
      if (!s) throw new Error(`bench: no shape for ${name}`);
      shapes.set(name, s);
      const length = s.reduce((a, b) => a * b, 1) * 4;
      offset += length;
      return { name, location: "weights/stand-in", offset: offset - length, length, dtype: "float32", shape: s } as ExternalTensor;
    },
    rows(name, start, count) {
      const t = stand.get(name);
      const row = t.length / t.shape[0];
      return { ...t, name: `${name}[${start}]`, shape: [count, ...t.shape.slice(1)], length: row * count, offset: t.offset + start * row };
    },
  };
  build(stand);
  await Deno.mkdir(folder, { recursive: true });
  const dtype = opts.dtype ?? "F32", item = dtype === "F16" ? 2 : 4, limit = opts.shardBytes ?? 2 ** 30;
  const weightMap: Record<string, string> = {};
  let shard: Record<string, WritableTensor> = {}, shardSize = 0, shards = 0, s = 12345;
  const flush = async () => {
    const file = `model-${String(++shards).padStart(5, "0")}.safetensors`;
    await writeSafetensors(join(folder, file), shard);
    for (const name of Object.keys(shard)) weightMap[name] = file;
    shard = {};
    shardSize = 0;
  };
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1), fanIn = shape.length > 1 ? n / shape[0] : 1;
    const scale = shape.length > 1 ? 1 / Math.sqrt(fanIn) : 0.05;
    if (shardSize > 0 && shardSize + n * item > limit) await flush();
    const data = dtype === "F16" ? new Uint16Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const v = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
      data[i] = dtype === "F16" ? halfBits(v) : v;
    }
    shard[name] = { dtype, shape, data } as WritableTensor;
    shardSize += n * item;
  }
  await flush();
  const index = join(folder, "model.safetensors.index.json");
  await Deno.writeTextFile(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return weightSource(await loadCheckpoint(index), (f) => `${basename(folder)}/${basename(f)}`);
}

/** Half-precision bits of a small float (normal range, round toward zero: random values need no more). */
function halfBits(v: number): number {
  const sign = v < 0 ? 0x8000 : 0, a = Math.abs(v);
  if (a < 2 ** -14) return sign;
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.floor((a / 2 ** e - 1) * 1024);
}
