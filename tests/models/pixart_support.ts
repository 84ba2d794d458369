/** Helpers of the PixArt and T5 tests: rewriting a fixture checkpoint with changed values. */
import { loadCheckpoint } from "../../lib/weights/checkpoint.ts";
import { readTensorF32, type WritableTensor, writeSafetensors as write } from "../../lib/weights/safetensors.ts";

/** Copies every tensor of the checkpoint at `from` (file, folder or index) into one F32 file, through `edit`. */
export async function writeSafetensors(
  from: string,
  to: string,
  edit: (name: string, data: Float32Array) => Float32Array = (_, d) => d,
): Promise<void> {
  const ckpt = await loadCheckpoint(from);
  const out: Record<string, WritableTensor> = {};
  for (const [name, ref] of ckpt.tensors) out[name] = { dtype: "F32", shape: [...ref.shape], data: edit(name, await readTensorF32(ref)) };
  await write(to, out);
}
