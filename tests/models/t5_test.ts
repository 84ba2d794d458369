/**
 * The T5 v1.1 encoder graph against the PyTorch reference (tools/reference/t5.py) on the tiny
 * random-weight encoder of fixtures/pixart-tiny (2 layers, sharded checkpoint): outputs within
 * 1e-4 relative in fp32, for real tokens only and against the reference's padded-and-masked
 * run; the relative-position buckets exactly; the fp16 graph stays finite where plain fp16
 * arithmetic overflows.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { buildT5EncoderGraph } from "../../lib/models/t5/graph.ts";
import { parseT5Config } from "../../lib/models/t5/config.ts";
import { relativePositionBuckets } from "../../kernels/t5_attention.ts";
import type { HostTensor } from "../../lib/runtime/session.ts";
import { FIXTURES, readGolden, relError, sessionFor, tempBundle } from "../support.ts";
import { writeSafetensors } from "./pixart_support.ts";

const TE = join(FIXTURES, "pixart-tiny", "diffusers", "text_encoder");

function ids(values: ArrayLike<number>): HostTensor {
  return { dtype: "int64", shape: [1, values.length], data: BigInt64Array.from(Array.from(values), (v) => BigInt(v)) };
}

Deno.test("T5 relative-position buckets match the reference for every distance up to 119", async () => {
  const golden = await readGolden(join(FIXTURES, "pixart-tiny", "golden-t5.safetensors"));
  const ref = golden.get("kern.buckets")!.data;
  const ours = relativePositionBuckets(120, 32, 128);
  assert.deepEqual(Array.from(ours, Number), Array.from(ref));
});

Deno.test("T5 encoder graph matches the PyTorch reference (fp32, 1e-4), with or without the reference's padding", async () => {
  const cfg = parseT5Config(JSON.parse(await Deno.readTextFile(join(TE, "config.json"))), TE);
  const golden = await readGolden(join(FIXTURES, "pixart-tiny", "golden-t5.safetensors"));
  const bundle = await tempBundle(TE);
  try {
    const s = await sessionFor(bundle.dir, "t5.onnx", buildT5EncoderGraph(bundle.src, cfg, "float32"));
    for (const key of ["0", "1", "long"]) {
      const input = golden.get(`ids.${key}`)!.data;
      const out = (await s.run({ input_ids: ids(input) })).last_hidden_state;
      assert.deepEqual(out.shape, [1, input.length, cfg.dModel]);
      const err = relError(out.data as Float32Array, golden.get(`hidden.${key}`)!.data);
      assert.ok(err <= 1e-4, `prompt ${key}: ${err}`);
      const padded = golden.get(`padded_hidden.${key}`);
      if (padded) {
        const real = padded.data.subarray(0, input.length * cfg.dModel);
        assert.ok(relError(out.data as Float32Array, real) <= 1e-4, `prompt ${key} vs padded reference`);
      }
    }
    await s.release();
  } finally {
    await bundle.cleanup();
  }
});

Deno.test("fp16 T5 graph: finite on a 120-token input whose feed-forward overflows fp16, and close to fp32", async () => {
  // The fixture encoder with its `wo` weights scaled so that the feed-forward outputs reach ~1e5,
  // past fp16's 65504, as T5 v1.1 XXL's do on real prompts.
  const cfg = parseT5Config(JSON.parse(await Deno.readTextFile(join(TE, "config.json"))), TE);
  const dir = await Deno.makeTempDir({ prefix: "fora-t5-fp16-" });
  try {
    await writeSafetensors(
      TE,
      join(dir, "model.safetensors"),
      (name, data) => (name.endsWith("wo.weight") ? data.map((v) => v * 3e4) : data),
    );
    const bundle = await tempBundle(join(dir, "model.safetensors"));
    try {
      const long = Array.from({ length: 120 }, (_, i) => (i * 7) % cfg.vocabSize);
      const s32 = await sessionFor(bundle.dir, "t5-32.onnx", buildT5EncoderGraph(bundle.src, cfg, "float32"));
      const s16 = await sessionFor(bundle.dir, "t5-16.onnx", buildT5EncoderGraph(bundle.src, cfg, "float16"));
      const a = (await s32.run({ input_ids: ids(long) })).last_hidden_state.data as Float32Array;
      const b = (await s16.run({ input_ids: ids(long) })).last_hidden_state.data as Float32Array;
      assert.ok(b.every(Number.isFinite), "fp16 graph produced inf or NaN");
      const err = relError(b, a);
      assert.ok(err <= 2e-2, `fp16 vs fp32: ${err}`);
      await s32.release();
      await s16.release();
    } finally {
      await bundle.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
