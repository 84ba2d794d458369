/**
 * ONNX Runtime's profile: a chrome-trace JSON array. Each executed kernel is a "Node"
 * event named `<node>_kernel_time` with its duration (microseconds), operator, the
 * input/output shapes and the bytes it read and wrote; each `run()` is a "Session"
 * event `model_run`.
 */
import { ForaError } from "../errors.ts";
import type { Shape } from "./flops.ts";

export interface Kernel {
  /** Node name as ONNX Runtime reports it (fused kernels extend the original name). */
  name: string;
  op: string;
  /** Start, microseconds since the session was created. */
  ts: number;
  /** Duration, microseconds. */
  dur: number;
  inputs: Shape[];
  outputs: Shape[];
  /** Bytes of input activations, weights and outputs, as the trace reports them. */
  bytes: number;
  /** Bytes per element of the first input (4 for float, 2 for float16). */
  itemBytes: number;
}

export interface Run {
  ts: number;
  dur: number;
}

export interface Trace {
  kernels: Kernel[];
  runs: Run[];
}

interface RawEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: Record<string, unknown>;
}

export async function readTrace(path: string): Promise<Trace> {
  let events: unknown;
  try {
    events = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new ForaError("io", `${path}: cannot read the ONNX Runtime profile (${(e as Error).message})`);
  }
  if (!Array.isArray(events)) throw new ForaError("io", `${path}: not an ONNX Runtime profile (expected a JSON array)`);
  return parseTrace(events as RawEvent[]);
}

export function parseTrace(events: RawEvent[]): Trace {
  const kernels: Kernel[] = [], runs: Run[] = [];
  for (const e of events) {
    if (typeof e.ts !== "number" || typeof e.dur !== "number" || typeof e.name !== "string") continue;
    if (e.cat === "Session" && e.name === "model_run") runs.push({ ts: e.ts, dur: e.dur });
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const a = e.args ?? {};
    kernels.push({
      name: e.name.slice(0, -"_kernel_time".length),
      op: String(a.op_name ?? ""),
      ts: e.ts,
      dur: e.dur,
      inputs: shapes(a.input_type_shape),
      outputs: shapes(a.output_type_shape),
      bytes: num(a.activation_size) + num(a.parameter_size) + num(a.output_size),
      itemBytes: itemBytes(a.input_type_shape),
    });
  }
  kernels.sort((p, q) => p.ts - q.ts);
  runs.sort((p, q) => p.ts - q.ts);
  return { kernels, runs };
}

/** [{"float": [1, 128]}, {"int64": [1]}] -> [[1, 128], [1]]. */
function shapes(v: unknown): Shape[] {
  if (!Array.isArray(v)) return [];
  return v.map((entry) => {
    const dims = entry && typeof entry === "object" ? Object.values(entry as Record<string, unknown>)[0] : undefined;
    return Array.isArray(dims) ? dims.map(Number) : [];
  });
}

function itemBytes(v: unknown): number {
  const first = Array.isArray(v) && v[0] && typeof v[0] === "object" ? Object.keys(v[0] as object)[0] : "float";
  return first === "float16" || first === "bfloat16" ? 2 : first === "double" || first === "int64" ? 8 : 4;
}

function num(v: unknown): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}
