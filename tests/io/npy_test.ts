import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pythonTuple as formatShape, readNpy, writeNpy } from "../../lib/io/npy.ts";
import { assertIoError, listDir, withTempDir } from "./helpers.ts";

const DATA = fileURLToPath(new URL("./data/", import.meta.url));
const PYTHON = "/usr/bin/python3";

/** A .npy file's bytes from its parts, for building broken files. */
function rawNpy(
  header: string,
  data: Uint8Array = new Uint8Array(),
  version: 1 | 2 = 1,
): Uint8Array {
  const text = new TextEncoder().encode(header);
  const lengthBytes = version === 1 ? 2 : 4;
  const out = new Uint8Array(8 + lengthBytes + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  out.set(text, 8 + lengthBytes);
  out.set(data, 8 + lengthBytes + text.length);
  return out;
}

const f4Header = (shape: string) => `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }\n`;

Deno.test("float32 arrays of any rank round-trip through writeNpy and readNpy", async () => {
  await withTempDir(async (dir) => {
    const cases = [
      {
        shape: [2, 3, 4],
        data: Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 1e3),
      },
      {
        shape: [5],
        data: Float32Array.from([0, -0, Infinity, -Infinity, 1e-40]),
      },
      { shape: [], data: Float32Array.from([Math.PI]) },
      { shape: [0, 3], data: new Float32Array(0) },
    ];
    for (const [i, array] of cases.entries()) {
      const path = join(dir, `a${i}.npy`);
      await writeNpy(path, array);
      const back = await readNpy(path);
      assert.deepEqual(back.shape, array.shape);
      assert.deepEqual(back.data, array.data);
    }
    assert.deepEqual(await listDir(dir), [
      "a0.npy",
      "a1.npy",
      "a2.npy",
      "a3.npy",
    ], "no temp files left");
  });
});

Deno.test("writeNpy writes format 1.0 with NumPy's header, data on a 64-byte boundary", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "a.npy");
    await writeNpy(path, { shape: [2, 3], data: new Float32Array(6) });
    const bytes = await Deno.readFile(path);
    assert.deepEqual([...bytes.subarray(0, 8)], [
      0x93,
      0x4e,
      0x55,
      0x4d,
      0x50,
      0x59,
      1,
      0,
    ]);
    const headerLength = new DataView(bytes.buffer).getUint16(8, true);
    assert.equal((10 + headerLength) % 64, 0);
    const header = new TextDecoder().decode(
      bytes.subarray(10, 10 + headerLength),
    );
    assert.match(
      header,
      /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/,
    );
    assert.equal(bytes.length, 10 + headerLength + 24);
  });
});

Deno.test("formatShape writes Python tuples", () => {
  assert.deepEqual([[], [5], [2, 3]].map(formatShape), [
    "()",
    "(5,)",
    "(2, 3)",
  ]);
});

Deno.test("reads files NumPy wrote, format 1.0 and 2.0", async () => {
  const a = await readNpy(join(DATA, "numpy_f4.npy"));
  assert.deepEqual(a.shape, [2, 3, 4]);
  assert.deepEqual(
    a.data,
    Float32Array.from(
      { length: 24 },
      (_, i) => Math.fround(Math.fround(i - 11.5) / 7),
    ),
  );
  const b = await readNpy(join(DATA, "numpy_f4_v2.npy"));
  assert.deepEqual(b, { shape: [3], data: Float32Array.from([1.5, -2, 3.25]) });
});

Deno.test("NumPy's float64 and Fortran-order files are refused with a fix in the message", async () => {
  const f8 = join(DATA, "numpy_f8.npy");
  await assertIoError(readNpy(f8), f8, /dtype "<f8".*astype\(np\.float32\)/);
  const fortran = join(DATA, "numpy_fortran.npy");
  await assertIoError(
    readNpy(fortran),
    fortran,
    /Fortran order.*np\.ascontiguousarray/,
  );
});

Deno.test({
  name: "NumPy reads what writeNpy wrote",
  ignore: !(await hasNumpy()),
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "a.npy");
      const data = Float32Array.from({ length: 6 }, (_, i) => i / 3 - 1);
      await writeNpy(path, { shape: [3, 2], data });
      const code = "import sys, json, numpy as np; a = np.load(sys.argv[1]); " +
        "print(json.dumps([a.dtype.str, list(a.shape), a.flags.c_contiguous, a.ravel().tolist()]))";
      const out = await new Deno.Command(PYTHON, {
        args: ["-c", code, path],
        stderr: "inherit",
      }).output();
      assert.equal(out.code, 0);
      const [dtype, shape, contiguous, values] = JSON.parse(
        new TextDecoder().decode(out.stdout),
      );
      assert.deepEqual([dtype, shape, contiguous], ["<f4", [3, 2], true]);
      assert.deepEqual(Float32Array.from(values), data);
    });
  },
});

Deno.test("corrupt .npy files give ForaErrors naming the file and the problem", async () => {
  await withTempDir(async (dir) => {
    const twoFloats = new Uint8Array(new Float32Array([1, 2]).buffer);
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(), /not a \.npy file/],
      [
        "bad-magic",
        new TextEncoder().encode("PK\x03\x04 this is a zip file, not npy"),
        /not a \.npy file/,
      ],
      ["short-preamble", rawNpy(f4Header("(2,)")).subarray(0, 9), /truncated/],
      [
        "version-3",
        (() => {
          const b = rawNpy(f4Header("(2,)"), twoFloats);
          b[6] = 3;
          return b;
        })(),
        /version 3\.0 is not supported/,
      ],
      [
        "header-past-end",
        rawNpy(f4Header("(2,)"), twoFloats).subarray(0, 30),
        /header length \d+ runs past the end/,
      ],
      [
        "truncated-data",
        rawNpy(f4Header("(3,)"), twoFloats),
        /truncated: shape \(3,\) needs 12 bytes .* holds 8/,
      ],
      [
        "extra-data",
        rawNpy(f4Header("(1,)"), twoFloats),
        /extra bytes: shape \(1,\) needs 4 bytes .* holds 8/,
      ],
      [
        "int32",
        rawNpy(
          "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
          twoFloats,
        ),
        /dtype "<i4"/,
      ],
      [
        "big-endian",
        rawNpy(
          "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
          twoFloats,
        ),
        /big-endian/,
      ],
      [
        "fortran",
        rawNpy(
          "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }\n",
          twoFloats,
        ),
        /Fortran order/,
      ],
      [
        "not-a-dict",
        rawNpy("__import__('os').system('echo hi')\n", twoFloats),
        /not a valid \.npy header dict/,
      ],
      [
        "missing-key",
        rawNpy("{'descr': '<f4', 'shape': (2,), }\n", twoFloats),
        /exactly the keys/,
      ],
      [
        "extra-key",
        rawNpy(
          "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",
          twoFloats,
        ),
        /exactly the keys/,
      ],
      [
        "negative-dim",
        rawNpy(f4Header("(-2,)"), twoFloats),
        /not a valid \.npy header dict/,
      ],
      [
        "shape-not-tuple",
        rawNpy(f4Header("'2'"), twoFloats),
        /shape is not a tuple of integers/,
      ],
      [
        "binary-header",
        rawNpy("\xff\xfe\n", twoFloats),
        /not a valid|not text/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      const path = join(dir, `${name}.npy`);
      await Deno.writeFile(path, bytes);
      await assertIoError(readNpy(path), path, pattern);
    }
  });
});

Deno.test("sizes in a header are checked against the file before anything is allocated", async () => {
  await withTempDir(async (dir) => {
    // 2^40 floats (4 TiB) claimed by a 100-byte file: refused at once, no allocation.
    const huge = join(dir, "huge.npy");
    await Deno.writeFile(
      huge,
      rawNpy(f4Header("(1048576, 1048576)"), new Uint8Array(8)),
    );
    await assertIoError(
      readNpy(huge),
      huge,
      /truncated: shape \(1048576, 1048576\) needs 4398046511104 bytes/,
    );
    // Beyond 2^53 values: not even a number of bytes.
    const absurd = join(dir, "absurd.npy");
    await Deno.writeFile(
      absurd,
      rawNpy(
        f4Header("(4294967296, 4294967296, 4294967296)"),
        new Uint8Array(8),
      ),
    );
    await assertIoError(readNpy(absurd), absurd, /impossible number of bytes/);
    // A version-2.0 header length of 4 GiB in a tiny file.
    const longHeader = join(dir, "long-header.npy");
    const bytes = rawNpy(f4Header("(2,)"), new Uint8Array(8), 2);
    new DataView(bytes.buffer).setUint32(8, 0xffffffff, true);
    await Deno.writeFile(longHeader, bytes);
    await assertIoError(
      readNpy(longHeader),
      longHeader,
      /header length 4294967295 is over the/,
    );
  });
});

Deno.test("missing files and folders are ForaErrors naming the path", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "missing.npy");
    await assertIoError(readNpy(missing), missing, /no such file/);
    await assertIoError(readNpy(dir), dir, /not a regular file/);
    const nowhere = join(dir, "no", "a.npy");
    await assertIoError(
      writeNpy(nowhere, { shape: [1], data: new Float32Array(1) }),
      nowhere,
      /folder does not exist/,
    );
  });
});

Deno.test("writeNpy refuses data that does not match the shape (a bug, not a user error)", async () => {
  await assert.rejects(
    writeNpy("/nonexistent/a.npy", {
      shape: [2, 2],
      data: new Float32Array(3),
    }),
    RangeError,
  );
  await assert.rejects(
    writeNpy("/nonexistent/a.npy", { shape: [-1], data: new Float32Array(0) }),
    RangeError,
  );
});

async function hasNumpy(): Promise<boolean> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import numpy"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.code === 0;
  } catch {
    return false;
  }
}
