/**
 * The .npz writer and reader (lib/sample/npz.ts): round trips, ZIP64 records, identical bytes
 * for identical arrays, NumPy's own np.load on what fora writes (where python3 with NumPy is
 * installed), and clear errors for damaged archives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isForaError } from "../../lib/errors.ts";
import { npzWriter, readNpz } from "../../lib/sample/npz.ts";
import { npyHeader } from "../../lib/io/npy.ts";
import { withTempDir } from "../bundle/helpers.ts";

async function writeNpz(path: string, arrays: [string, "|u1" | "<i8" | "<f4", number[], Uint8Array][], forceZip64 = false) {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const w = npzWriter(file, { forceZip64 });
    for (const [name, dtype, shape, bytes] of arrays) {
      await w.begin(name, dtype, shape);
      // In uneven chunks, as a merge streams them.
      for (let i = 0; i < bytes.length; i += 7) await w.write(bytes.subarray(i, i + 7));
    }
    await w.finish();
  } finally {
    file.close();
  }
}

const images = Uint8Array.from({ length: 2 * 3 * 4 * 3 }, (_, i) => (i * 37) & 255);
const labels = new Uint8Array(new BigInt64Array([7n, 1n]).buffer);

for (const zip64 of [false, true]) {
  Deno.test(`npz round trip: arrays, dtypes and shapes come back exactly${zip64 ? " (ZIP64 records)" : ""}`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "a.npz");
      await writeNpz(path, [["arr_0", "|u1", [2, 3, 4, 3], images], ["arr_1", "<i8", [2], labels]], zip64);
      const arrays = readNpz(await Deno.readFile(path), path);
      assert.deepEqual([...arrays.keys()], ["arr_0", "arr_1"]);
      assert.deepEqual(arrays.get("arr_0")!.shape, [2, 3, 4, 3]);
      assert.equal(arrays.get("arr_0")!.dtype, "|u1");
      assert.deepEqual(arrays.get("arr_0")!.bytes, images);
      assert.deepEqual([...new BigInt64Array(arrays.get("arr_1")!.bytes.slice().buffer)], [7n, 1n]);
    });
  });
}

Deno.test("npz files of equal arrays are equal byte for byte (fixed timestamps)", async () => {
  await withTempDir(async (dir) => {
    await writeNpz(join(dir, "a.npz"), [["arr_0", "|u1", [2, 3, 4, 3], images]]);
    await writeNpz(join(dir, "b.npz"), [["arr_0", "|u1", [2, 3, 4, 3], images]]);
    assert.deepEqual(await Deno.readFile(join(dir, "a.npz")), await Deno.readFile(join(dir, "b.npz")));
  });
});

Deno.test("npy headers are NumPy's: 64-byte aligned data, Python tuple shapes", () => {
  for (const shape of [[], [5], [2, 3], [50000, 256, 256, 3]]) {
    const h = npyHeader("|u1", shape);
    assert.equal(h.length % 64, 0);
    const text = new TextDecoder().decode(h.subarray(10));
    assert.match(text, /^\{'descr': '\|u1', 'fortran_order': False, 'shape': \(.*\), \} *\n$/);
  }
  assert.match(new TextDecoder().decode(npyHeader("<i8", [5])), /'shape': \(5,\)/);
});

const hasNumpy = await new Deno.Command("python3", { args: ["-c", "import numpy"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "np.load reads fora's npz, plain and ZIP64, as uint8 NHWC arr_0 and int64 arr_1",
  ignore: !hasNumpy,
  fn: async () => {
    await withTempDir(async (dir) => {
      for (const [name, zip64] of [["plain.npz", false], ["zip64.npz", true]] as const) {
        await writeNpz(join(dir, name), [["arr_0", "|u1", [2, 3, 4, 3], images], ["arr_1", "<i8", [2], labels]], zip64);
        const script = `import numpy as np, sys, zipfile
d = np.load(sys.argv[1])
a, l = d["arr_0"], d["arr_1"]
assert zipfile.ZipFile(sys.argv[1]).testzip() is None
print(sorted(d.files), a.dtype, a.shape, l.dtype, l.tolist(), int(a.sum()))`;
        const out = await new Deno.Command("python3", { args: ["-c", script, join(dir, name)] }).output();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
        const sum = images.reduce((a, b) => a + b, 0);
        assert.equal(new TextDecoder().decode(out.stdout).trim(), `['arr_0', 'arr_1'] uint8 (2, 3, 4, 3) int64 [7, 1] ${sum}`);
      }
    });
  },
});

Deno.test({
  name: "fora reads an npz that np.savez wrote",
  ignore: !hasNumpy,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "np.npz");
      const script = `import numpy as np, sys
np.savez(sys.argv[1], np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), np.array([3, 4], dtype=np.int64))`;
      const out = await new Deno.Command("python3", { args: ["-c", script, path] }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const arrays = readNpz(await Deno.readFile(path), path);
      assert.deepEqual(arrays.get("arr_0")!.shape, [2, 2, 2, 3]);
      assert.deepEqual([...arrays.get("arr_0")!.bytes], Array.from({ length: 24 }, (_, i) => i));
      assert.deepEqual([...new BigInt64Array(arrays.get("arr_1")!.bytes.slice().buffer)], [3n, 4n]);
    });
  },
});

Deno.test("damaged npz files fail with a one-line error naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "a.npz");
    await writeNpz(path, [["arr_0", "|u1", [2, 3, 4, 3], images]]);
    const good = await Deno.readFile(path);
    const flipped = good.slice();
    flipped[120] ^= 0xff; // inside arr_0's data
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(), /too short/],
      ["truncated", good.subarray(0, good.length - 30), /end-of-central-directory|truncated/],
      ["a bit flipped in the data", flipped, /CRC-32/],
      ["not a zip", new TextEncoder().encode("x".repeat(100)), /not a \.npz/],
    ];
    for (const [what, bytes, message] of cases) {
      assert.throws(() => readNpz(bytes, path), (e) => isForaError(e) && message.test(e.message) && e.message.startsWith(path), what);
    }
  });
});
