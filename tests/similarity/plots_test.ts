/** The heatmap and summary pictures (lib/similarity/plots.ts), rendered to PNG. */
import assert from "node:assert/strict";
import { svgToPng } from "../../lib/plot/raster.ts";
import { viridis } from "../../lib/plot/colormap.ts";
import { colourRange, consecutive, consecutiveSvg, heatmapPixels, heatmapSvg } from "../../lib/similarity/plots.ts";
import type { SimilarityResult, Track } from "../../lib/similarity/run.ts";
import { distinctPixels, freshDir } from "./helpers.ts";
import { readPng } from "../../lib/io/png.ts";
import { join } from "node:path";

function band(S: number): Float64Array {
  const m = new Float64Array(S * S);
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) m[i * S + j] = 1 - Math.abs(i - j) / S;
  return m;
}

Deno.test("the colour range runs from the matrix minimum (rounded down to 0.05) to 1", () => {
  assert.deepEqual(colourRange(band(10)), [0.1, 1]);
  assert.deepEqual(colourRange(new Float64Array([1, -0.33, -0.33, 1])), [-0.35, 1]);
  assert.deepEqual(colourRange(new Float64Array([1, 1, 1, 1])), [0.95, 1], "a uniform matrix still has a range");
});

Deno.test("heatmap cells take viridis colours: the diagonal the top colour, step 0 top left", () => {
  const S = 5, m = band(S), px = heatmapPixels(m, S, [0, 1]);
  assert.deepEqual([...px.subarray(0, 3)], viridis(1));
  assert.deepEqual([...px.subarray(3 * (S - 1), 3 * S)], viridis(m[S - 1]));
  assert.notDeepEqual(viridis(0), viridis(1));
});

Deno.test("a heatmap PNG has the expected size, is not uniform, and shows the matrix, the axes and a colour bar", async () => {
  const S = 30;
  const track: Track = { layer: 3, branch: "attn", matrix: band(S) };
  const svg = heatmapSvg(track, S, "test model");
  for (const s of ["block 3 attention", "sampling step k", "cosine similarity", ">25<", ">1.00<"]) assert.ok(svg.includes(s), s);
  const path = join(await freshDir("plots"), "h.png");
  await Deno.writeFile(path, await svgToPng(svg));
  const png = await readPng(path);
  assert.deepEqual([png.width, png.height, png.channels], [580, 520, 3]);
  assert.ok(distinctPixels(png.data, 3) > 200, "many colours: the matrix, its colour bar and anti-aliased text");
  // The top-left cell (step 0 vs 0, similarity 1) is drawn in viridis' top colour.
  const at = (x: number, y: number) => [...png.data.subarray((y * png.width + x) * 3, (y * png.width + x) * 3 + 3)];
  assert.deepEqual(at(86 + 3, 66 + 3), viridis(1));
});

Deno.test("the consecutive-step plot draws one line per block for each branch", async () => {
  const S = 12;
  const tracks: Track[] = [0, 1].flatMap((layer) => (["attn", "mlp"] as const).map((branch) => ({ layer, branch, matrix: band(S) })));
  assert.deepEqual(consecutive(band(4), 4), [0.75, 0.75, 0.75]);
  const r = {
    model: "m",
    steps: S,
    modelTimes: [],
    layers: [0, 1],
    branches: ["attn", "mlp"],
    depth: 2,
    tracks,
  } as unknown as SimilarityResult;
  const svg = consecutiveSvg(r);
  assert.equal(svg.match(/<polyline/g)?.length, 4);
  const png = await svgToPng(svg);
  assert.ok(png.length > 1000);
});
