/**
 * Weight quantization for `--precision int8`, done once at convert time.
 *
 * Scheme: symmetric (zero point 0), one scale per output channel (a row of PyTorch's
 * [out, in] Linear weight): scale = max|w| / 127, q = round(w / scale) with ties to even
 * (as ONNX's QuantizeLinear rounds), clamped to [-127, 127]. -128 is never used, so
 * the range is symmetric and q * scale never exceeds max|w|. An all-zero row gets scale 0
 * and q = 0, which dequantizes to exact zeros.
 *
 * The int8 values are stored transposed, [in, out]: the B operand layout of
 * DynamicQuantizeMatMul (kernels/linear_int8.ts), which ONNX Runtime prepacks at load.
 */
import { dirname, join } from "node:path";
import type { ExternalTensor } from "../onnx/builder.ts";
import { type DType, fromSafetensorsDType } from "../onnx/dtypes.ts";
import { ForaError } from "../errors.ts";
import { type ReadableDType, readSafetensorsHeader, readTensorF32, type WritableTensor, writeSafetensors } from "./safetensors.ts";

export interface Int8Matrix {
  /** [in, out], row-major. */
  values: Int8Array;
  /** [out]: the scale of each output channel. */
  scales: Float32Array;
}

/** Rounds to the nearest integer, ties to the even one (2.5 -> 2, 3.5 -> 4, -2.5 -> -2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties go up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `w` is [out, inp] row-major; returns the transposed int8 values and one scale per row. */
export function quantizePerChannel(w: Float32Array, out: number, inp: number): Int8Matrix {
  if (w.length !== out * inp) throw new Error(`internal: ${w.length} values for a [${out}, ${inp}] weight`);
  const values = new Int8Array(out * inp);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const row = w.subarray(o * inp, (o + 1) * inp);
    let max = 0;
    for (let i = 0; i < inp; i++) max = Math.max(max, Math.abs(row[i]));
    // The float32 scale is what ONNX Runtime multiplies by: divide by that same value.
    const scale = Math.fround(max / 127);
    scales[o] = scale;
    if (scale === 0) continue;
    for (let i = 0; i < inp; i++) {
      values[i * out + o] = Math.max(-127, Math.min(127, roundHalfEven(row[i] / scale)));
    }
  }
  return { values, scales };
}

/** An int8 weight and its per-channel scales, as tensors of the file the convert wrote. */
export interface QuantizedLinear {
  /** int8 [in, out]. */
  weight: ExternalTensor;
  /** float32 [out]. */
  scale: ExternalTensor;
}

const SAFETENSORS_DTYPE: Partial<Record<DType, ReadableDType>> = { float32: "F32", float16: "F16", bfloat16: "BF16" };

/**
 * Quantizes each [out, in] weight (read from the bundle folder `root`, where their
 * locations point) into the safetensors file `root/file` and returns, keyed by each
 * source tensor's name, the int8 weight and scales as external tensors of that file.
 */
export async function writeQuantizedLinears(
  root: string,
  file: string,
  weights: readonly ExternalTensor[],
): Promise<Map<string, QuantizedLinear>> {
  const tensors: Record<string, WritableTensor> = {};
  const names = (t: ExternalTensor) => ({ weight: `${t.name}:int8`, scale: `${t.name}:scale` });
  for (const t of weights) {
    const [out, inp] = t.shape;
    const dtype = SAFETENSORS_DTYPE[t.dtype];
    if (t.shape.length !== 2 || !dtype) throw new Error(`internal: ${t.name} is not a float matrix`);
    const w = await readTensorF32({
      file: join(root, ...t.location.split("/")),
      name: t.name,
      dtype,
      shape: t.shape,
      offset: t.offset,
      byteLength: t.length,
    });
    if (!w.every(Number.isFinite)) {
      throw new ForaError("weights", `${t.location}: tensor "${t.name}" holds NaN or infinite values; it cannot be quantized to int8`);
    }
    const q = quantizePerChannel(w, out, inp);
    const n = names(t);
    tensors[n.weight] = { dtype: "I8", shape: [inp, out], data: q.values };
    tensors[n.scale] = { dtype: "F32", shape: [out], data: q.scales };
  }
  const path = join(root, ...file.split("/"));
  await Deno.mkdir(dirname(path), { recursive: true });
  await writeSafetensors(path, tensors, { format: "fora int8: per-output-channel symmetric, [in, out] layout" });
  const header = await readSafetensorsHeader(path);
  const external = (name: string): ExternalTensor => {
    const ref = header.tensors.get(name)!;
    return { name, location: file, offset: ref.offset, length: ref.byteLength, dtype: fromSafetensorsDType(ref.dtype), shape: ref.shape };
  };
  return new Map(weights.map((t) => [t.name, { weight: external(names(t).weight), scale: external(names(t).scale) }]));
}
