/** Element types a graph value can have, and how they map onto ONNX's enum. */
export type DType = "float32" | "float16" | "bfloat16" | "int64" | "int32" | "int8" | "bool";

const ONNX_ENUM: Record<DType, number> = {
  float32: 1,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
};

const ITEM_SIZE: Record<DType, number> = {
  float32: 4,
  int32: 4,
  int64: 8,
  int8: 1,
  bool: 1,
  float16: 2,
  bfloat16: 2,
};

export function onnxElemType(dtype: DType): number {
  return ONNX_ENUM[dtype];
}

export function itemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float16" || dtype === "bfloat16";
}

/** The safetensors spelling of a weight dtype. */
export function fromSafetensorsDType(st: string): DType {
  switch (st) {
    case "F32":
      return "float32";
    case "F16":
      return "float16";
    case "BF16":
      return "bfloat16";
    case "I64":
      return "int64";
    case "I32":
      return "int32";
    case "I8":
      return "int8";
    default:
      throw new Error(`no graph dtype for safetensors dtype ${st}`);
  }
}

/** Raw little-endian bytes of numeric values stored as `dtype`. */
export function encodeValues(values: ArrayLike<number> | BigInt64Array, dtype: DType): Uint8Array<ArrayBuffer> {
  switch (dtype) {
    case "float32":
      return bytesOf(Float32Array.from(values as ArrayLike<number>));
    case "float16":
      // Deno ships a global Float16Array with IEEE round-to-nearest-even conversion.
      return bytesOf(Float16Array.from(values as ArrayLike<number>));
    case "int64":
      return bytesOf(
        values instanceof BigInt64Array ? values : BigInt64Array.from(values as ArrayLike<number>, (v) => BigInt(v)),
      );
    case "int32":
      return bytesOf(Int32Array.from(values as ArrayLike<number>));
    case "int8":
      return bytesOf(Int8Array.from(values as ArrayLike<number>));
    case "bool":
      return bytesOf(Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0)));
    case "bfloat16":
      throw new Error("bfloat16 constants are not supported; keep constants in float32 or float16");
  }
}

function bytesOf(a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Uint8Array<ArrayBuffer> {
  return new Uint8Array(a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
}
