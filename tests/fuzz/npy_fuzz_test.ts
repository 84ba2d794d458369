/**
 * Fuzz target: the .npy reader (lib/io/npy.ts), which reads latents from anywhere
 * (`fora generate --latents-in`). Cases: random bytes; a magic and version with a generated
 * header dict (hostile dtypes, shapes, orders, lengths) and data of any length; byte-level
 * mutations of a valid file. An accepted file must give exactly product(shape) values;
 * anything else must be a one-line ForaError("io").
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { readNpy, writeNpy } from "../../lib/io/npy.ts";
import { attempt, fuzz, mutated, scratchFile, show } from "./fuzz.ts";

const scratch = await scratchFile("x.npy");
const valid = await (async () => {
  const path = scratch.path + ".valid";
  await writeNpy(path, { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
  return await Deno.readFile(path);
})();

/** Mostly `usual`, sometimes one of `odd`: so that many cases get past the first checks. */
const mostly = <T>(usual: T, ...odd: T[]) =>
  fc.oneof({ arbitrary: fc.constant(usual), weight: 5 }, { arbitrary: fc.constantFrom(...odd), weight: 1 });

const dims = fc.array(
  fc.oneof({ arbitrary: fc.integer({ min: 0, max: 5 }), weight: 8 }, {
    arbitrary: fc.constantFrom("2**40", "-1", "1.5", "9007199254740993", "99999999999999999999", "2L", "''", "()"),
    weight: 1,
  }),
  { maxLength: 4 },
);
const structured = fc.record({
  version: mostly([1, 0], [2, 0], [3, 0], [1, 1], [0, 0]),
  descr: mostly("'<f4'", "'>f4'", "'<f8'", "'|u1'", "'<f2'", "'f4'", "''", "'<f4", '"<f4"', "<f4", "'\\x'"),
  fortran: mostly("False", "True", "0", "'False'", "None"),
  dims,
  shapeOdd: mostly(undefined, "()", "[2, 3]", "(2, (3,))", "None", "(", "(2 3)", "'x'"),
  extra: mostly(undefined, "'x': 1", "'descr': '<f4'", "1: 2"),
  reversed: fc.boolean(),
  tail: mostly("", " ", "\n", "}", ", }", "xyz"),
  lengthDelta: mostly(0, -8, -1, 1, 7, 65535, 2 ** 32 - 1),
  data: fc.oneof(
    { arbitrary: fc.constant(null), weight: 3 }, // exactly what the shape needs
    { arbitrary: fc.uint8Array({ maxLength: 40 }), weight: 1 },
  ),
}).map((c) => {
  const shape = c.shapeOdd ?? `(${c.dims.join(", ")}${c.dims.length === 1 ? "," : ""})`;
  const items = [`'descr': ${c.descr}`, `'fortran_order': ${c.fortran}`, `'shape': ${shape}`];
  if (c.reversed) items.reverse();
  if (c.extra) items.push(c.extra);
  const header = `{${items.join(", ")}, }${c.tail}`;
  const count = c.dims.every((d) => typeof d === "number") ? (c.dims as number[]).reduce((a, b) => a * b, 1) : 3;
  const data = c.data ?? new Uint8Array(count * 4);
  const text = new TextEncoder().encode(header);
  const lengthBytes = c.version[0] === 1 ? 2 : 4;
  const out = new Uint8Array(8 + lengthBytes + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, c.version[0], c.version[1]]);
  const v = new DataView(out.buffer);
  const length = Math.max(0, text.length + c.lengthDelta);
  if (lengthBytes === 2) v.setUint16(8, length % 65536, true);
  else v.setUint32(8, length % 2 ** 32, true);
  out.set(text, 8 + lengthBytes);
  out.set(data, 8 + lengthBytes + text.length);
  return out;
});

const cases = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 32 }), weight: 1 },
  { arbitrary: structured, weight: 5 },
  { arbitrary: mutated(valid), weight: 4 },
);

Deno.test("fuzz: the .npy reader returns exactly product(shape) values or a typed one-line error", async () => {
  try {
    await fuzz(cases, async (bytes) => {
      scratch.write(bytes);
      const r = await attempt(() => readNpy(scratch.path), ["io"], () => show(bytes));
      if (!r.ok) return "rejected";
      const { shape, data } = r.value;
      assert.ok(shape.every((d) => Number.isSafeInteger(d) && d >= 0), `shape ${shape}`);
      assert.equal(data.length, shape.reduce((a, b) => a * b, 1));
      return "accepted";
    });
  } finally {
    await scratch.cleanup();
  }
});
