/**
 * Fuzz target: the safetensors reader (lib/weights/safetensors.ts) on files from anywhere.
 * Cases: random bytes; a length prefix (honest or not) with a generated JSON header of
 * hostile dtypes, shapes and offsets; byte-level mutations of a valid file. A header that
 * passes must describe tensors that lie inside the file with sizes that match their shapes,
 * and each must then read back; anything else must be a one-line ForaError("weights").
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from "../../lib/weights/safetensors.ts";
import { attempt, fuzz, mutated, nastyNumber, scratchFile, show } from "./fuzz.ts";

const ITEM: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };

const scratch = await scratchFile("x.safetensors");
const valid = await (async () => {
  const path = scratch.path + ".valid";
  await writeSafetensors(path, {
    a: { dtype: "F32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    b: { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    c: { dtype: "I64", shape: [1], data: new BigInt64Array([7n]) },
  }, { format: "pt" });
  return await Deno.readFile(path);
})();

const entry = fc.record({
  dtype: fc.oneof(fc.constantFrom("F32", "F16", "BF16", "I64", "I32", "F64", "U8", "", "f32"), nastyNumber),
  shape: fc.oneof(fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), nastyNumber), { maxLength: 4 }), nastyNumber),
  data_offsets: fc.oneof(
    fc.tuple(fc.integer({ min: -2, max: 80 }), fc.integer({ min: -2, max: 80 })),
    fc.array(nastyNumber, { maxLength: 3 }),
    nastyNumber,
  ),
}, { requiredKeys: [] });

const header = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 6 }), fc.constant("__metadata__")),
  fc.oneof(entry, fc.jsonValue({ maxDepth: 2 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), nastyNumber))),
  { maxKeys: 4 },
);

const structured = fc.record({
  header,
  lengthDelta: fc.oneof(
    fc.constant(0n),
    fc.constant(0n),
    fc.bigInt({ min: -10n, max: 10n }),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  ),
  data: fc.uint8Array({ maxLength: 96 }),
}).map(({ header, lengthDelta, data }) => {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(json.length) + lengthDelta), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
});

const cases = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  { arbitrary: structured, weight: 4 },
  { arbitrary: mutated(valid), weight: 4 },
);

Deno.test(`fuzz: the safetensors reader returns in-bounds tensors or a typed one-line error`, async () => {
  try {
    await fuzz(cases, async (bytes) => {
      scratch.write(bytes);
      const r = await attempt(() => readSafetensorsHeader(scratch.path), ["weights"], () => show(bytes));
      if (!r.ok) return "rejected";
      const h = r.value;
      assert.equal(h.fileSize, bytes.length);
      for (const t of h.tensors.values()) {
        assert.ok(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `shape ${t.shape}`);
        const count = t.shape.reduce((a, b) => a * b, 1);
        assert.equal(t.byteLength, count * ITEM[t.dtype], `${t.name}: byteLength matches shape and dtype`);
        assert.ok(t.offset >= 8 + h.headerLength && t.offset + t.byteLength <= h.fileSize, `${t.name} inside the file`);
        assert.equal((await readTensorF32(t)).length, count);
      }
      return "accepted";
    });
  } finally {
    await scratch.cleanup();
  }
});
