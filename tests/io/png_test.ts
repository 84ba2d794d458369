import assert from "node:assert/strict";
import { join } from "node:path";
// Pinned inline until the import map lists it as "fast-png": "fast-png".
import { encode } from "fast-png";
import { type Image, makeGrid, toByte, toUint8Image } from "../../lib/io/image.ts";
import { readPng, writePng } from "../../lib/io/png.ts";
import { assertIoError, IS_ROOT, listDir, withTempDir } from "./helpers.ts";

function randomImage(width: number, height: number, channels: 1 | 3): Image {
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 97 + 13) % 256;
  return { width, height, channels, data };
}

Deno.test("RGB and gray images round-trip through writePng and readPng pixel for pixel", async () => {
  await withTempDir(async (dir) => {
    for (
      const image of [
        randomImage(7, 5, 3),
        randomImage(4, 9, 1),
        randomImage(1, 1, 3),
      ]
    ) {
      const path = join(dir, `img-${image.channels}-${image.width}.png`);
      await writePng(path, image);
      const bytes = await Deno.readFile(path);
      assert.deepEqual([...bytes.subarray(0, 8)], [
        0x89,
        0x50,
        0x4e,
        0x47,
        0x0d,
        0x0a,
        0x1a,
        0x0a,
      ], "PNG signature");
      const ihdr = new DataView(bytes.buffer, 16, 8);
      assert.deepEqual([ihdr.getUint32(0), ihdr.getUint32(4)], [
        image.width,
        image.height,
      ], "IHDR size");
      assert.deepEqual(await readPng(path), image);
    }
  });
});

Deno.test("a successful write leaves only the PNG, and replaces an existing one", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "a.png");
    await writePng(path, randomImage(3, 3, 1));
    await writePng(path, randomImage(2, 2, 3));
    assert.deepEqual(await listDir(dir), ["a.png"]);
    assert.equal((await readPng(path)).width, 2);
  });
});

Deno.test({
  name: "writing into an unwritable folder is a ForaError and leaves no temp file",
  ignore: IS_ROOT,
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o555);
      const path = join(dir, "a.png");
      await assertIoError(
        writePng(path, randomImage(2, 2, 3)),
        path,
        /could not write PNG image: permission denied/,
      );
      await Deno.chmod(dir, 0o755);
      assert.deepEqual(await listDir(dir), []);
    });
  },
});

Deno.test("a failure after the temp file was written removes it and leaves what was there", async () => {
  await withTempDir(async (dir) => {
    // The rename fails: a folder holds the target name.
    const path = join(dir, "a.png");
    await Deno.mkdir(path);
    await Deno.writeTextFile(join(path, "keep"), "x");
    await assertIoError(
      writePng(path, randomImage(4, 4, 3)),
      path,
      /could not write PNG image/,
    );
    assert.deepEqual(await listDir(dir), ["a.png"]);
    assert.deepEqual(await listDir(path), ["keep"]);
  });
});

Deno.test("writing into a missing folder names the file and the problem", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "no", "such", "a.png");
    await assertIoError(
      writePng(path, randomImage(2, 2, 1)),
      path,
      /the folder does not exist/,
    );
  });
});

Deno.test("readPng refuses missing, non-PNG, truncated and corrupted files with ForaErrors naming them", async () => {
  await withTempDir(async (dir) => {
    await assertIoError(
      readPng(join(dir, "missing.png")),
      join(dir, "missing.png"),
      /no such file/,
    );
    const text = join(dir, "text.png");
    await Deno.writeTextFile(text, "not a png at all");
    await assertIoError(readPng(text), text, /not a readable PNG/);
    const good = join(dir, "good.png");
    await writePng(good, randomImage(16, 16, 3));
    const bytes = await Deno.readFile(good);
    const truncated = join(dir, "truncated.png");
    await Deno.writeFile(truncated, bytes.subarray(0, bytes.length - 30));
    await assertIoError(readPng(truncated), truncated, /not a readable PNG/);
    const flipped = join(dir, "flipped.png");
    const copy = bytes.slice();
    copy[40] ^= 0xff; // inside the compressed data: the chunk CRC no longer matches
    await Deno.writeFile(flipped, copy);
    await assertIoError(readPng(flipped), flipped, /not a readable PNG/);
  });
});

Deno.test("readPng drops a fully opaque alpha channel, takes 16-bit to 8-bit, and refuses transparency", async () => {
  await withTempDir(async (dir) => {
    const rgb = randomImage(3, 2, 3);
    const rgba = new Uint8Array(3 * 2 * 4);
    for (let p = 0; p < 6; p++) {
      rgba.set([...rgb.data.subarray(p * 3, p * 3 + 3), 255], p * 4);
    }
    const opaque = join(dir, "opaque.png");
    await Deno.writeFile(
      opaque,
      encode({ width: 3, height: 2, channels: 4, depth: 8, data: rgba }),
    );
    assert.deepEqual(await readPng(opaque), rgb);

    const deep = join(dir, "deep.png");
    const gray16 = Uint16Array.from([0, 257, 65535, 32896], (v) => v);
    await Deno.writeFile(
      deep,
      encode({ width: 2, height: 2, channels: 1, depth: 16, data: gray16 }),
    );
    assert.deepEqual(await readPng(deep), {
      width: 2,
      height: 2,
      channels: 1,
      data: Uint8Array.from([0, 1, 255, 128]),
    });

    rgba[7] = 128;
    const seeThrough = join(dir, "transparent.png");
    await Deno.writeFile(
      seeThrough,
      encode({ width: 3, height: 2, channels: 4, depth: 8, data: rgba }),
    );
    await assertIoError(readPng(seeThrough), seeThrough, /transparent pixels/);
  });
});

Deno.test("writePng refuses data that does not match the size (a bug, not a user error)", async () => {
  await assert.rejects(
    writePng("/nonexistent/x.png", {
      width: 2,
      height: 2,
      channels: 3,
      data: new Uint8Array(11),
    }),
    RangeError,
  );
});

Deno.test("toUint8Image maps [-1, 1] to round((x + 1) / 2 · 255), clamping, NaN to 0", () => {
  assert.deepEqual([-1, 1, 0, -0.5, 2, -3, NaN, 1 / 255].map(toByte), [
    0,
    255,
    128,
    64,
    255,
    0,
    0,
    128,
  ]);
});

Deno.test("toUint8Image turns CHW into HWC", () => {
  // 3 channels, 1 row, 2 columns: R = [-1, 1], G = [0, 0], B = [1, -1].
  const im = toUint8Image(Float32Array.from([-1, 1, 0, 0, 1, -1]), [3, 1, 2]);
  assert.deepEqual(im, {
    width: 2,
    height: 1,
    channels: 3,
    data: Uint8Array.from([0, 128, 255, 255, 128, 0]),
  });
});

Deno.test("toUint8Image upscales by repeating pixels (nearest)", () => {
  const im = toUint8Image(Float32Array.from([-1, 1, 1, -1]), [1, 2, 2], 2);
  assert.deepEqual([im.width, im.height, im.channels], [4, 4, 1]);
  // deno-fmt-ignore
  assert.deepEqual([...im.data], [
    0, 0, 255, 255,
    0, 0, 255, 255,
    255, 255, 0, 0,
    255, 255, 0, 0,
  ]);
  assert.throws(
    () => toUint8Image(new Float32Array(8), [2, 2, 2]),
    RangeError,
    "2 channels",
  );
  assert.throws(
    () => toUint8Image(new Float32Array(3), [1, 2, 2]),
    RangeError,
    "wrong length",
  );
  assert.throws(
    () => toUint8Image(new Float32Array(4), [1, 2, 2], 0),
    RangeError,
    "upscale 0",
  );
});

Deno.test("makeGrid lays images out in rows of `columns`, black after the last", () => {
  const cell = (v: number): Image => ({
    width: 2,
    height: 1,
    channels: 1,
    data: Uint8Array.from([v, v + 1]),
  });
  const grid = makeGrid([cell(10), cell(20), cell(30)], 2);
  assert.deepEqual([grid.width, grid.height, grid.channels], [4, 2, 1]);
  assert.deepEqual([...grid.data], [10, 11, 20, 21, 30, 31, 0, 0]);
  const row = makeGrid([cell(10), cell(20)], 8);
  assert.deepEqual(
    [row.width, row.height],
    [4, 1],
    "no more columns than images",
  );
  const rgb = makeGrid([randomImage(2, 2, 3), randomImage(2, 2, 3)], 1);
  assert.deepEqual([rgb.width, rgb.height], [2, 4]);
  assert.deepEqual(rgb.data.subarray(12), randomImage(2, 2, 3).data);
  assert.throws(() => makeGrid([cell(0), randomImage(2, 1, 3)], 2), RangeError);
  assert.throws(() => makeGrid([], 2), RangeError);
  assert.throws(() => makeGrid([cell(0)], 0), RangeError);
});

Deno.test("a grid written as PNG reads back the same", async () => {
  await withTempDir(async (dir) => {
    const samples = [0, 1, 2, 3, 4].map((s) =>
      toUint8Image(
        Float32Array.from({ length: 3 * 4 * 4 }, (_, i) => Math.sin(i + s)),
        [3, 4, 4],
      )
    );
    const grid = makeGrid(samples, 3);
    await writePng(join(dir, "grid.png"), grid);
    assert.deepEqual(await readPng(join(dir, "grid.png")), grid);
    assert.deepEqual([grid.width, grid.height], [12, 8]);
  });
});
