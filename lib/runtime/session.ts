/**
 * The one execution interface of fora. Nothing else imports onnxruntime-node: the
 * rest of the code sees sessions that take and return plain host tensors.
 */
import * as ort from "onnxruntime-node";
import { ForaError } from "../errors.ts";

export type Device = "cpu" | "cuda" | "webgpu";

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
  /** When set, ONNX Runtime writes a chrome-trace profile with this file prefix. */
  profilePrefix?: string;
}

export interface Session {
  readonly path: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>>;
  /** Ends profiling (if on) and returns the trace file ONNX Runtime wrote. */
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

export async function openSession(path: string, opts: SessionOptions = {}): Promise<Session> {
  const device = opts.device ?? "cpu";
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: "all",
    intraOpNumThreads: opts.threads ?? 0,
    enableProfiling: opts.profilePrefix !== undefined,
    profileFilePrefix: opts.profilePrefix,
  };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, options);
  } catch (e) {
    throw new ForaError("runtime", `ONNX Runtime cannot load ${path} on ${device}: ${(e as Error).message}`);
  }
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
    endProfiling() {
      // onnxruntime-node's endProfiling returns nothing; the trace is found by prefix.
      session.endProfiling();
      return undefined;
    },
    release: () => session.release(),
  };
}
