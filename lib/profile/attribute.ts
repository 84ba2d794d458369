/**
 * Kernel time, FLOPs and bytes of one graph's trace, summed per model part.
 *
 * - Control-flow kernels (If, Loop, Scan) are left out: the kernels of the branch they
 *   ran are in the trace too, and counting both would count that time twice.
 * - Kernels ONNX Runtime inserted itself (layout reorders, squeezes from its fusions)
 *   have no node in the graph; each takes the part of the kernel that ran just before it
 *   in the same run, the kernel it serves.
 * - The first `skipRuns` runs can be left out (warm-up: memory arenas grow on the first run).
 * - Time statistic: "median" (the default) takes each kernel's median duration over the
 *   runs, times its number of runs; "sum" adds the raw durations. On a busy machine a
 *   kernel that lost its core to another process for a few milliseconds would otherwise
 *   dominate the part it belongs to.
 */
import { kernelCost } from "./flops.ts";
import { lookupNode, type PartKey, partLabel } from "./parts.ts";
import type { Kernel, Trace } from "./trace.ts";

export interface PartTime {
  key: PartKey;
  /** Kernel time, microseconds, summed over the analysed runs. */
  us: number;
  flops: number;
  bytes: number;
  kernels: number;
}

export interface Attribution {
  /** Runs analysed, and runs left out as warm-up. */
  runs: number;
  skippedRuns: number;
  /** Wall time of the analysed runs (ONNX Runtime's model_run events), microseconds. */
  runUs: number;
  /** Time of every analysed kernel, microseconds; the parts add up to it. */
  kernelUs: number;
  /** Sorted by part, block, branch; includes "other" when some kernel had no named part. */
  parts: PartTime[];
  /** Kernels ONNX Runtime inserted, attributed to the kernel before them. */
  inserted: number;
}

const CONTROL_FLOW = new Set(["If", "Loop", "Scan"]);
const OTHER: PartKey = { part: "other", block: null, branch: null };

export type TimeStat = "median" | "sum";

export interface AttributeOptions {
  skipRuns?: number;
  stat?: TimeStat;
}

export function attribute(trace: Trace, parts: Map<string, PartKey>, opts: AttributeOptions = {}): Attribution {
  const skip = Math.min(opts.skipRuns ?? 0, Math.max(trace.runs.length - 1, 0));
  const analysed = trace.runs.slice(skip);
  const start = analysed.length ? analysed[0].ts : -Infinity;
  // Each kernel's executions, with the part it was attributed to.
  const groups = new Map<string, { key: PartKey; kernel: Kernel; durs: number[] }>();
  let inserted = 0;
  let previous: PartKey = OTHER;
  for (const k of trace.kernels) {
    if (k.ts < start) continue;
    if (CONTROL_FLOW.has(k.op)) continue;
    let key = lookupNode(parts, k.name);
    if (!key) {
      key = previous;
      inserted++;
    }
    previous = key;
    const g = groups.get(k.name);
    if (g) g.durs.push(k.dur);
    else groups.set(k.name, { key, kernel: k, durs: [k.dur] });
  }
  const sums = new Map<string, PartTime>();
  let kernelUs = 0;
  for (const g of groups.values()) {
    const us = opts.stat === "sum" ? g.durs.reduce((a, b) => a + b, 0) : median(g.durs) * g.durs.length;
    add(sums, g.key, g.kernel, us, g.durs.length);
    kernelUs += us;
  }
  const order = (p: PartTime) => p.key.part === "other" ? "~" : partLabel(p.key);
  return {
    runs: analysed.length,
    skippedRuns: skip,
    runUs: analysed.reduce((a, r) => a + r.dur, 0),
    kernelUs,
    parts: [...sums.values()].sort((a, b) => sortKey(a.key).localeCompare(sortKey(b.key)) || order(a).localeCompare(order(b))),
    inserted,
  };
}

/** Adds `times` executions of kernel `k` taking `us` microseconds in all. */
function add(sums: Map<string, PartTime>, key: PartKey, k: Kernel, us: number, times: number): void {
  const id = partLabel(key);
  let s = sums.get(id);
  if (!s) sums.set(id, s = { key, us: 0, flops: 0, bytes: 0, kernels: 0 });
  const cost = kernelCost(k.op, k.inputs, k.outputs, k.itemBytes);
  s.us += us;
  s.flops += cost.flops * times;
  s.bytes += (k.bytes + cost.hiddenWeightBytes) * times;
  s.kernels += times;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Execution order of the parts: embedders, blocks by index, then the rest. */
function sortKey(k: PartKey): string {
  const rank = [
    "x_embedder",
    "t_embedder",
    "y_embedder",
    "conditioning",
    "text_encoder",
    "block",
    "residuals",
    "cache",
    "final_layer",
    "guidance",
    "vae",
    "other",
  ]
    .indexOf(k.part);
  return `${String(rank).padStart(2, "0")}.${String(k.block ?? 0).padStart(5, "0")}`;
}
