/** lib/io/resize.ts against PyTorch's bilinear resize and center crop (tools/reference/make_resize_golden.py). */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { resizeAndCrop } from "../../lib/io/resize.ts";
import { FIXTURES } from "../support.ts";

interface Case {
  shape: [number, number, number];
  width: number;
  height: number;
  input: number[];
  output: number[];
}

const cases: Case[] = JSON.parse(await Deno.readTextFile(join(FIXTURES, "resize", "golden.json")));

for (const c of cases) {
  Deno.test(`resize and crop [${c.shape}] to ${c.width}x${c.height} matches PyTorch within 1e-6`, () => {
    const out = resizeAndCrop(Float32Array.from(c.input), c.shape, c.width, c.height);
    assert.equal(out.length, c.shape[0] * c.width * c.height);
    let worst = 0;
    out.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - c.output[i]))));
    assert.ok(worst < 1e-6, `largest difference ${worst}`);
  });
}
