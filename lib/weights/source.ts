/**
 * A checkpoint seen from inside a bundle: tensors become external references whose
 * locations are relative to the bundle folder (where the .onnx files sit), so graph
 * builders never deal with absolute paths or byte offsets.
 */
import type { ExternalTensor } from "../onnx/builder.ts";
import type { LinearTensors } from "../../kernels/linear.ts";
import { fromSafetensorsDType } from "../onnx/dtypes.ts";
import { ForaError } from "../errors.ts";
import { type Checkpoint, requireTensor } from "./checkpoint.ts";

export interface WeightSource {
  /** Where the checkpoint came from, for error messages. */
  readonly origin: string;
  has(name: string): boolean;
  /** The tensor `name`, checked against `shape` when given. */
  get(name: string, shape?: number[]): ExternalTensor;
  /** Rows [start, start+count) along axis 0 of `name`: a contiguous byte range. */
  rows(name: string, start: number, count: number): ExternalTensor;
}

/** `locate` maps a checkpoint file (absolute path) to its path inside the bundle. */
export function weightSource(ckpt: Checkpoint, locate: (file: string) => string): WeightSource {
  const get = (name: string, shape?: number[]): ExternalTensor => {
    const ref = requireTensor(ckpt, name, shape);
    if (ref.dtype !== "F32" && ref.dtype !== "F16" && ref.dtype !== "BF16") {
      throw new ForaError("weights", `${ref.file}: tensor "${name}" has dtype ${ref.dtype}; weights must be F32, F16 or BF16`);
    }
    return {
      name,
      location: locate(ref.file),
      offset: ref.offset,
      length: ref.byteLength,
      dtype: fromSafetensorsDType(ref.dtype),
      shape: [...ref.shape],
    };
  };
  return {
    origin: ckpt.dir,
    has: (name) => ckpt.tensors.has(name),
    get,
    rows(name, start, count) {
      const t = get(name);
      if (start < 0 || start + count > t.shape[0]) {
        throw new ForaError("weights", `${ckpt.dir}: tensor "${name}" has ${t.shape[0]} rows, cannot take rows ${start}..${start + count}`);
      }
      return tensorRows(t, start, count);
    },
  };
}

/** Rows [start, start+count) along axis 0: a contiguous byte range of the same file. */
export function tensorRows(t: ExternalTensor, start: number, count: number): ExternalTensor {
  const rowBytes = t.length / t.shape[0];
  return {
    ...t,
    name: `${t.name}[${start}:${start + count}]`,
    offset: t.offset + start * rowBytes,
    length: count * rowBytes,
    shape: [count, ...t.shape.slice(1)],
  };
}

/** A layer's `prefix.weight`, checked against `shape` ([out, ...]), and its `prefix.bias` [out]. */
export function layerTensors(src: WeightSource, prefix: string, shape: number[]): LinearTensors {
  return { weight: src.get(`${prefix}.weight`, shape), bias: src.get(`${prefix}.bias`, [shape[0]]) };
}
