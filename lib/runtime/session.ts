/**
 * The one execution interface of fora. Nothing else imports onnxruntime-node: the
 * rest of the code sees sessions that take and return plain host tensors.
 */
import * as ort from "onnxruntime-node";
import { basename, dirname, join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { checkCommandLine } from "./command_line.ts";
import { prepareDevice, sessionLoadError } from "./devices.ts";
import type { Device } from "./machine.ts";

export type { Device } from "./machine.ts";

export interface HostTensor {
  dtype: "float32" | "int64" | "bool";
  shape: number[];
  /** bool tensors hold one byte (0 or 1) per element. */
  data: Float32Array | BigInt64Array | Uint8Array;
}

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads; 0 lets ONNX Runtime choose. */
  threads?: number;
  /**
   * When set, ONNX Runtime profiles every run and writes a chrome-trace JSON file named
   * `<prefix>_<date>_<time>.json` (the prefix may hold a folder; relative to the cwd).
   */
  profilePrefix?: string;
  /**
   * ONNX Runtime's CPU memory arena (default on). Off, freed intermediate tensors go back to
   * the system: the arena keeps its high-water mark, which for attention over thousands of
   * tokens is several GiB.
   */
  cpuArena?: boolean;
  /**
   * Whether the intra-op pool's threads spin between runs (default off). Spinning pays only
   * when this session runs back to back, as the full step of a run with no reuse step does;
   * FORA alternates sessions, and a pool left spinning takes the cores from the next one.
   */
  spinning?: boolean;
}

export interface Session {
  readonly path: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>>;
  /**
   * Ends profiling (if on) and returns the path of the trace file ONNX Runtime wrote;
   * undefined when profiling is off. Release ends it too, so no trace is ever lost.
   */
  endProfiling(): string | undefined;
  release(): Promise<void>;
}

export function f32(shape: number[], data?: Float32Array | number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const arr = data instanceof Float32Array ? data : data ? Float32Array.from(data) : new Float32Array(n);
  if (arr.length !== n) throw new ForaError("runtime", `tensor of shape [${shape}] needs ${n} values, got ${arr.length}`);
  return { dtype: "float32", shape, data: arr };
}

export function i64(shape: number[], values: number[]): HostTensor {
  return { dtype: "int64", shape, data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

/** A session opened inside `withProfiling`: its graph and, once ended, its trace file. */
export interface ProfiledSession {
  graph: string;
  trace?: string;
}

interface ProfilingScope {
  folder: string;
  sessions: { record: ProfiledSession; end: () => void }[];
}

let profiling: ProfilingScope | null = null;

/**
 * Runs `fn` with profiling on for every session opened meanwhile, by whatever code opens
 * it (fora profile wraps a whole generation this way): each writes its trace into
 * `folder`. Returns fn's result and one record per session, in opening order; sessions
 * still open when fn returns are ended here.
 */
export async function withProfiling<T>(folder: string, fn: () => Promise<T>): Promise<{ result: T; sessions: ProfiledSession[] }> {
  if (profiling) throw new Error("withProfiling: already profiling");
  const state: ProfilingScope = { folder: resolve(folder), sessions: [] };
  profiling = state;
  try {
    const result = await fn();
    for (const s of state.sessions) s.end();
    return { result, sessions: state.sessions.map((s) => s.record) };
  } finally {
    profiling = null;
  }
}

export async function openSession(path: string, opts: SessionOptions = {}): Promise<Session> {
  checkCommandLine(); // before ONNX Runtime starts: a long one crashes it (command_line.ts)
  const device = opts.device ?? "cpu";
  // Missing CUDA/WebGPU pieces fail here, with a message that names them (devices.ts).
  await prepareDevice(device);
  const scoped: ProfilingScope | null = profiling;
  const profilePrefix = opts.profilePrefix ??
    (scoped ? join(scoped.folder, `${scoped.sessions.length}-${basename(path).replace(/\.onnx$/, "")}`) : undefined);
  const before = profilePrefix === undefined ? new Set<string>() : traceFiles(profilePrefix);
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: "all",
    intraOpNumThreads: opts.threads ?? 0,
    enableCpuMemArena: opts.cpuArena ?? true,
    enableProfiling: profilePrefix !== undefined,
    profileFilePrefix: profilePrefix,
    // ONNX Runtime's own log writes an ANSI-coloured copy of every error to stderr; the error
    // also reaches us as an exception, which fora reports as one line. Fatal only.
    logSeverityLevel: 4,
    // Measured on DiT-S/2 (bench/RESULTS.md): N=3 runs 1.2-1.4x faster without spinning,
    // N=1 5-20% slower; hence off unless the caller knows the session runs back to back.
    extra: { session: { intra_op: { allow_spinning: opts.spinning ? "1" : "0" } } },
  };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, options);
  } catch (e) {
    throw sessionLoadError(device, path, e);
  }
  let trace: string | undefined, ended = profilePrefix === undefined;
  const endProfiling = (): string | undefined => {
    if (ended) return trace;
    ended = true;
    // onnxruntime-node's endProfiling returns nothing: the new file with the prefix is the trace.
    session.endProfiling();
    trace = [...traceFiles(profilePrefix!)].filter((f) => !before.has(f)).sort().at(-1);
    if (record) record.trace = trace;
    return trace;
  };
  const record: ProfiledSession | undefined = scoped ? { graph: path } : undefined;
  if (scoped && record) scoped.sessions.push({ record, end: endProfiling });
  return {
    path,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputs) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.dtype, t.data, t.shape);
      let result: ort.InferenceSession.ReturnType;
      try {
        result = outputs ? await session.run(ortFeeds, outputs) : await session.run(ortFeeds);
      } catch (e) {
        throw new ForaError("runtime", `running ${path} failed: ${(e as Error).message}`);
      }
      const out: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(result)) {
        out[name] = {
          dtype: t.type === "int64" ? "int64" : t.type === "bool" ? "bool" : "float32",
          shape: [...t.dims],
          data: t.data as HostTensor["data"],
        };
        t.dispose?.();
      }
      return out;
    },
    endProfiling,
    async release() {
      endProfiling();
      await session.release();
    },
  };
}

/** Trace files ONNX Runtime may have written for `prefix`: `<prefix>_<date>_<time>.json`. */
function traceFiles(prefix: string): Set<string> {
  const dir = dirname(resolve(prefix)), stem = `${basename(prefix)}_`;
  const found = new Set<string>();
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.startsWith(stem) && e.name.endsWith(".json")) found.add(join(dir, e.name));
    }
  } catch { /* no folder yet: no files */ }
  return found;
}
