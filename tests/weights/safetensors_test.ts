import assert from "node:assert/strict";
import { join } from "node:path";
import {
  MAX_HEADER_LENGTH,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorF32,
  writeSafetensors,
} from "../../lib/weights/safetensors.ts";
import { assertWeightsError, bytesOf, concat, withTempDir, writeRawSafetensors } from "./helpers.ts";

const f32Entry = (shape: number[], begin: number) => ({
  dtype: "F32",
  shape,
  data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
});

Deno.test("F32 tensors and metadata round-trip through writeSafetensors", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    const a = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 3);
    const b = new Float32Array([Math.PI, -0, 1e-30]);
    await writeSafetensors(path, {
      "blocks.0.attn.qkv.weight": { dtype: "F32", shape: [3, 4], data: a },
      "blocks.0.attn.qkv.bias": { dtype: "F32", shape: [3], data: b },
    }, { format: "pt", note: "ünïcode" });

    const header = await readSafetensorsHeader(path);
    assert.equal(header.path, path);
    assert.deepEqual(header.metadata, { format: "pt", note: "ünïcode" });
    assert.equal(header.tensors.size, 2);
    const ref = header.tensors.get("blocks.0.attn.qkv.weight")!;
    assert.deepEqual(
      {
        file: ref.file,
        dtype: ref.dtype,
        shape: ref.shape,
        offset: ref.offset,
        byteLength: ref.byteLength,
      },
      {
        file: path,
        dtype: "F32",
        shape: [3, 4],
        offset: 8 + header.headerLength,
        byteLength: 48,
      },
    );
    assert.deepEqual(await readTensorF32(ref), a);
    assert.deepEqual(
      await readTensorF32(header.tensors.get("blocks.0.attn.qkv.bias")!),
      b,
    );
  });
});

Deno.test("writer pads the header with spaces so the data area starts 8-byte aligned", async () => {
  await withTempDir(async (dir) => {
    for (
      const name of [
        "a",
        "ab",
        "abc",
        "abcd",
        "abcde",
        "abcdef",
        "abcdefg",
        "abcdefgh",
      ]
    ) {
      const path = join(dir, `${name}.safetensors`);
      await writeSafetensors(path, {
        [name]: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
      });
      const header = await readSafetensorsHeader(path);
      assert.equal((8 + header.headerLength) % 8, 0);
      const raw = await Deno.readFile(path);
      const text = new TextDecoder().decode(
        raw.subarray(8, 8 + header.headerLength),
      );
      assert.match(text, /^\{.*\} *$/);
    }
  });
});

Deno.test("F16 tensors decode exactly, including subnormals, zeros, infinities and NaN", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "half.safetensors");
    const bits = new Uint16Array([
      0x3c00,
      0xc000,
      0x3800,
      0x7bff,
      0x0001,
      0x03ff,
      0x0000,
      0x8000,
      0x7c00,
      0xfc00,
      0x7e00,
    ]);
    await writeSafetensors(path, {
      h: { dtype: "F16", shape: [bits.length], data: bits },
    });
    const ref = (await readSafetensorsHeader(path)).tensors.get("h")!;
    assert.equal(ref.dtype, "F16");
    const got = await readTensorF32(ref);
    const want = [
      1,
      -2,
      0.5,
      65504,
      2 ** -24,
      1023 * 2 ** -24,
      0,
      -0,
      Infinity,
      -Infinity,
      NaN,
    ];
    assert.deepEqual(Array.from(got), want);
    assert.ok(Object.is(got[7], -0));
  });
});

Deno.test("BF16 tensors decode as the upper half of an F32", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bf16.safetensors");
    const bits = new Uint16Array([
      0x3f80,
      0xc000,
      0x3f00,
      0x4049,
      0x7f80,
      0x8000,
    ]);
    await writeRawSafetensors(path, {
      w: { dtype: "BF16", shape: [2, 3], data_offsets: [0, 12] },
    }, bytesOf(bits));
    const ref = (await readSafetensorsHeader(path)).tensors.get("w")!;
    assert.deepEqual(ref.shape, [2, 3]);
    assert.deepEqual(Array.from(await readTensorF32(ref)), [
      1,
      -2,
      0.5,
      3.140625,
      Infinity,
      -0,
    ]);
  });
});

Deno.test("I64 and I32 tensors (goldens, labels) read as Float32Array", async () => {
  await withTempDir(async (dir) => {
    const i64Path = join(dir, "labels.safetensors");
    await writeSafetensors(i64Path, {
      labels: {
        dtype: "I64",
        shape: [4],
        data: new BigInt64Array([0n, 207n, -1n, 999n]),
      },
    });
    const i64 = (await readSafetensorsHeader(i64Path)).tensors.get("labels")!;
    assert.deepEqual(Array.from(await readTensorF32(i64)), [0, 207, -1, 999]);

    const i32Path = join(dir, "steps.safetensors");
    await writeRawSafetensors(
      i32Path,
      { steps: { dtype: "I32", shape: [3], data_offsets: [0, 12] } },
      bytesOf(new Int32Array([5, -7, 1000])),
    );
    const i32 = (await readSafetensorsHeader(i32Path)).tensors.get("steps")!;
    assert.deepEqual(Array.from(await readTensorF32(i32)), [5, -7, 1000]);
  });
});

Deno.test("scalar and empty tensors round-trip", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "edge.safetensors");
    await writeSafetensors(path, {
      scale: { dtype: "F32", shape: [], data: new Float32Array([2.5]) },
      none: { dtype: "F32", shape: [0, 8], data: new Float32Array(0) },
      after: { dtype: "F32", shape: [2], data: new Float32Array([7, 8]) },
    });
    const { tensors } = await readSafetensorsHeader(path);
    assert.deepEqual(Array.from(await readTensorF32(tensors.get("scale")!)), [
      2.5,
    ]);
    assert.equal((await readTensorF32(tensors.get("none")!)).length, 0);
    assert.deepEqual(Array.from(await readTensorF32(tensors.get("after")!)), [
      7,
      8,
    ]);
  });
});

Deno.test("readTensorBytes returns exactly the tensor's byte range", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "raw.safetensors");
    const first = new Float32Array([1, 2]);
    const second = new Uint16Array([0xabcd, 0x1234, 0x0f0f]);
    await writeSafetensors(path, {
      first: { dtype: "F32", shape: [2], data: first },
      second: { dtype: "F16", shape: [3], data: second },
    });
    const ref = (await readSafetensorsHeader(path)).tensors.get("second")!;
    assert.deepEqual(await readTensorBytes(ref), bytesOf(second));
  });
});

Deno.test("writer streams a large tensor and leaves no temporary file behind", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "big.safetensors");
    const big = new Float32Array(16 * 1024 * 1024); // 64 MB
    big[0] = 1;
    big[big.length - 1] = -1;
    await writeSafetensors(path, {
      w: { dtype: "F32", shape: [4096, 4096], data: big },
    });
    // Writing again replaces the file in one rename.
    await writeSafetensors(path, {
      w: { dtype: "F32", shape: [4096, 4096], data: big },
    });
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    assert.deepEqual(entries, ["big.safetensors"]);
    const got = await readTensorF32(
      (await readSafetensorsHeader(path)).tensors.get("w")!,
    );
    assert.equal(got.length, big.length);
    assert.equal(got[0], 1);
    assert.equal(got[got.length - 1], -1);
  });
});

Deno.test("writer refuses data whose length does not match the shape, writing nothing", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    await assertWeightsError(
      () =>
        writeSafetensors(path, {
          w: { dtype: "F32", shape: [2, 3], data: new Float32Array(5) },
        }),
      path,
      `tensor "w"`,
      "needs 6 elements but data holds 5",
    );
    await assertWeightsError(
      () =>
        writeSafetensors(path, {
          w: { dtype: "F16", shape: [2], data: new Float32Array(2) },
        }),
      `tensor "w"`,
      "Uint16Array",
    );
    const entries = [];
    for await (const e of Deno.readDir(dir)) entries.push(e.name);
    assert.deepEqual(entries, []);
  });
});

Deno.test("a file shorter than 8 bytes is reported as truncated", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "short.safetensors");
    await Deno.writeFile(path, new Uint8Array([1, 2, 3, 4, 5]));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "is 5 bytes, too short",
    );
  });
});

Deno.test("a file cut off inside the data area names the tensor that no longer fits", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "cut.safetensors");
    await writeSafetensors(path, {
      a: { dtype: "F32", shape: [4], data: new Float32Array(4) },
      b: { dtype: "F32", shape: [4], data: new Float32Array(4) },
    });
    const whole = await Deno.readFile(path);
    await Deno.writeFile(path, whole.subarray(0, whole.length - 8));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `tensor "b"`,
      "reach past the data area",
    );
  });
});

Deno.test("a header length beyond the end of the file is rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "long.safetensors");
    await writeRawSafetensors(path, {}, new Uint8Array(0), {
      declaredLength: 1000n,
    });
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "header length 1000 runs past the end",
    );
  });
});

Deno.test("a header length over the 100 MB cap is rejected before anything is allocated", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.safetensors");
    await writeRawSafetensors(path, {}, new Uint8Array(0), {
      declaredLength: 2n ** 62n,
    });
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `exceeds the ${MAX_HEADER_LENGTH}-byte cap`,
    );
  });
});

Deno.test("a header that is not UTF-8 is rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "latin1.safetensors");
    const headerBytes = concat(
      new TextEncoder().encode('{"caf'),
      new Uint8Array([0xe9]),
      new TextEncoder().encode('":1}'),
    );
    await writeRawSafetensors(path, null, new Uint8Array(0), { headerBytes });
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "not valid UTF-8",
    );
  });
});

Deno.test("a header that is not a JSON object is rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "json.safetensors");
    await writeRawSafetensors(path, null, new Uint8Array(0), {
      headerBytes: new TextEncoder().encode('{"w": {'),
    });
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "header is not valid JSON",
    );
    await writeRawSafetensors(path, [1, 2]);
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "header is not a JSON object",
    );
  });
});

Deno.test("an unknown dtype names the tensor and the supported dtypes", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "q.safetensors");
    await writeRawSafetensors(path, {
      "w.q": { dtype: "Q4_0", shape: [2], data_offsets: [0, 2] },
    }, new Uint8Array(2));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `tensor "w.q"`,
      `unknown dtype "Q4_0"`,
      "F32, F16, BF16",
    );
  });
});

Deno.test("a shape with negative or fractional dimensions is rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "shape.safetensors");
    for (const shape of [[-1, 4], [1.5], "3", [1e300]]) {
      await writeRawSafetensors(path, {
        w: { dtype: "F32", shape, data_offsets: [0, 0] },
      });
      await assertWeightsError(
        () => readSafetensorsHeader(path),
        path,
        `tensor "w"`,
        "shape must be a list of non-negative integers",
      );
    }
  });
});

Deno.test("data_offsets outside the data area or reversed are rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "offsets.safetensors");
    await writeRawSafetensors(
      path,
      { w: f32Entry([4], 8) },
      new Uint8Array(16),
    );
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `tensor "w"`,
      "data_offsets [8, 24] reach past the data area, which holds 16 bytes",
    );
    await writeRawSafetensors(path, {
      w: { dtype: "F32", shape: [0], data_offsets: [8, 4] },
    }, new Uint8Array(16));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `tensor "w"`,
      "end before they begin",
    );
    await writeRawSafetensors(path, {
      w: { dtype: "F32", shape: [1], data_offsets: [0] },
    }, new Uint8Array(16));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `tensor "w"`,
      "must be [begin, end]",
    );
  });
});

Deno.test("a byte range that does not match shape and dtype is rejected", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    const header = {
      "blocks.0.attn.qkv.weight": {
        dtype: "F32",
        shape: [3, 4],
        data_offsets: [0, 100],
      },
    };
    await writeRawSafetensors(path, header, new Uint8Array(100));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      `${path}: tensor "blocks.0.attn.qkv.weight": data_offsets [0, 100] hold 100 bytes but shape [3, 4] of F32 needs 48`,
    );
  });
});

Deno.test("overlapping tensors are rejected, naming both", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "overlap.safetensors");
    await writeRawSafetensors(path, {
      a: f32Entry([4], 0),
      b: f32Entry([4], 8),
    }, new Uint8Array(24));
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `"a" [0, 16] and "b" [8, 24] overlap`,
    );
  });
});

Deno.test("__metadata__ must map strings to strings", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "meta.safetensors");
    await writeRawSafetensors(path, { __metadata__: { steps: 50 } });
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      `"steps" holds a number`,
    );
  });
});

Deno.test("pickled checkpoints (.pt, .bin, .pth, .ckpt) are refused with a conversion recipe", async () => {
  await withTempDir(async (dir) => {
    for (
      const name of ["model.pt", "pytorch_model.bin", "model.pth", "sd.ckpt"]
    ) {
      const path = join(dir, name);
      await Deno.writeFile(
        path,
        new Uint8Array([0x80, 0x02, 0x7d, 0x71, 0, 0, 0, 0]),
      );
      await assertWeightsError(
        () => readSafetensorsHeader(path),
        path,
        "pickled PyTorch checkpoints are not supported",
        "from safetensors.torch import save_file",
      );
    }
  });
});

Deno.test("a PyTorch zip checkpoint renamed to .safetensors is recognised as pickled", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "renamed.safetensors");
    await Deno.writeFile(
      path,
      concat(new TextEncoder().encode("PK\x03\x04"), new Uint8Array(60)),
    );
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "pickled PyTorch checkpoints",
    );
  });
});

Deno.test("a missing file is a ForaError naming the path", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "absent.safetensors");
    await assertWeightsError(
      () => readSafetensorsHeader(path),
      path,
      "no such file",
    );
  });
});
