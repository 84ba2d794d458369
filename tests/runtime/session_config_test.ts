/** Session config entries given to openSession reach ONNX Runtime (bench/mlas_variants.ts relies on them). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { GraphBuilder } from "../../lib/onnx/builder.ts";
import { writeModel } from "../../lib/onnx/serialize.ts";
import { f32, openSession, type SessionOptions } from "../../lib/runtime/session.ts";

/** y = x W for a 2 x 2 constant W, run once with `opts`. */
async function runMatMul(opts: SessionOptions): Promise<number[]> {
  const g = new GraphBuilder("matmul", "float32");
  g.output(g.matmul(g.input("x", "float32", [1, 2]), g.constant([1, 2, 3, 4], [2, 2])), "y");
  const dir = await Deno.makeTempDir({ prefix: "fora-session-config-" });
  try {
    const path = join(dir, "matmul.onnx");
    await writeModel(path, g.data());
    const session = await openSession(path, { threads: 1, ...opts });
    try {
      return [...(await session.run({ x: f32([1, 2], [1, 1]) })).y.data as Float32Array];
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a session with prepacking switched off by config entry computes the same product", async () => {
  assert.deepEqual(await runMatMul({ config: { "session.disable_prepacking": "1" } }), [4, 6]);
});

Deno.test("a config entry reaches ONNX Runtime: told to read the ONNX file as ORT format, the load fails", async () => {
  await assert.rejects(runMatMul({ config: { "session.load_model_format": "ORT" } }), /cannot load .*matmul\.onnx/);
});
