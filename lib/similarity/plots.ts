/**
 * The pictures of `fora similarity`: one heatmap per layer and branch (the S x S matrix,
 * step 0 top left, like the paper's Figure 2, with labelled step axes and a colour bar)
 * and a summary plot of the similarity of consecutive steps, one line per layer.
 */
import * as fastPng from "fast-png";
import { viridis, viridisCss } from "../plot/colormap.ts";
import { line, niceTicks, pixelImage, polyline, rect, stepTicks, svgDocument, text } from "../plot/svg.ts";
import type { SimilarityResult, Track } from "./run.ts";

export const BRANCH_TITLE: Record<string, string> = { attn: "attention", mlp: "MLP" };

/** Colour range of a matrix: [lo, 1] with lo its minimum rounded down to 0.05. */
export function colourRange(m: Float64Array): [number, number] {
  let min = 1;
  for (const v of m) if (v < min) min = v;
  const lo = Math.max(-1, Math.floor(min * 20 + 1e-9) / 20);
  return [lo < 1 ? lo : 0.95, 1];
}

/** The matrix as an S x S RGB raster in viridis over [lo, hi]. */
export function heatmapPixels(m: Float64Array, S: number, [lo, hi]: [number, number]): Uint8Array {
  const data = new Uint8Array(S * S * 3);
  for (let p = 0; p < S * S; p++) {
    const [r, g, b] = viridis((m[p] - lo) / (hi - lo));
    data[3 * p] = r;
    data[3 * p + 1] = g;
    data[3 * p + 2] = b;
  }
  return data;
}

export function heatmapSvg(track: Track, S: number, modelName: string): string {
  const W = 580, H = 520, x0 = 86, y0 = 66, size = 390;
  const range = colourRange(track.matrix);
  const png = fastPng.encode({ width: S, height: S, channels: 3, depth: 8, data: heatmapPixels(track.matrix, S, range) });
  const body: string[] = [];
  body.push(
    text(W / 2, 24, `block ${track.layer} ${BRANCH_TITLE[track.branch]}: cosine similarity between steps`, {
      size: 15,
      anchor: "middle",
      weight: "bold",
    }),
  );
  body.push(text(W / 2, 44, modelName, { size: 11, anchor: "middle", fill: "#666666" }));
  body.push(pixelImage(x0, y0, size, size, png));
  body.push(rect(x0, y0, size, size, "none", `stroke="#444444" stroke-width="1"`));
  const cell = size / S;
  for (const t of stepTicks(S - 1, 6)) {
    const c = (t + 0.5) * cell;
    body.push(line(x0 + c, y0 + size, x0 + c, y0 + size + 5));
    body.push(text(x0 + c, y0 + size + 18, String(t), { size: 11, anchor: "middle" }));
    body.push(line(x0 - 5, y0 + c, x0, y0 + c));
    body.push(text(x0 - 8, y0 + c, String(t), { size: 11, anchor: "end", baseline: "middle" }));
  }
  body.push(text(x0 + size / 2, y0 + size + 40, "sampling step k (0 = first, noisiest)", { size: 12, anchor: "middle" }));
  body.push(text(x0 - 52, y0 + size / 2, "sampling step k", { size: 12, anchor: "middle", rotate: -90 }));
  colourBar(body, x0 + size + 26, y0, 18, size, range);
  return svgDocument(W, H, body);
}

function colourBar(body: string[], x: number, y: number, w: number, h: number, [lo, hi]: [number, number]): void {
  const n = 64;
  for (let i = 0; i < n; i++) {
    const t = 1 - (i + 0.5) / n;
    body.push(rect(x, y + (i * h) / n, w, h / n + 0.6, viridisCss(t)));
  }
  body.push(rect(x, y, w, h, "none", `stroke="#444444" stroke-width="1"`));
  for (const v of niceTicks(lo, hi, 5)) {
    const yy = y + h - ((v - lo) / (hi - lo)) * h;
    body.push(line(x + w, yy, x + w + 4, yy));
    body.push(text(x + w + 7, yy, v.toFixed(2), { size: 11, baseline: "middle" }));
  }
  body.push(text(x + w + 52, y + h / 2, "cosine similarity", { size: 12, anchor: "middle", rotate: 90 }));
}

/** cos(step k-1, step k) for k = 1..S-1. */
export function consecutive(m: Float64Array, S: number): number[] {
  return Array.from({ length: S - 1 }, (_, i) => m[i * S + i + 1]);
}

export function consecutiveSvg(result: SimilarityResult): string {
  const S = result.steps;
  const panels = result.branches;
  const W = 100 + panels.length * 420, H = 460;
  const all = result.tracks.flatMap((t) => consecutive(t.matrix, S));
  const min = all.length ? Math.min(...all) : 0;
  // Round the low end to 0.01 when every line is close to 1, to 0.05 otherwise.
  const unit = min > 0.8 ? 100 : 20;
  const lo = Math.max(-1, Math.min(0.99, Math.floor(min * unit + 1e-9) / unit));
  const body: string[] = [];
  body.push(text(W / 2, 24, "similarity of consecutive steps, per block", { size: 15, anchor: "middle", weight: "bold" }));
  body.push(
    text(W / 2, 44, `cos(features at step k-1, features at step k); ${result.model}`, { size: 11, anchor: "middle", fill: "#666666" }),
  );
  const layerColour = (l: number) => viridisCss(result.depth > 1 ? (0.9 * l) / (result.depth - 1) : 0);
  panels.forEach((branch, p) => {
    const x0 = 80 + p * 420, y0 = 70, w = 360, h = 300;
    body.push(text(x0 + w / 2, y0 - 10, BRANCH_TITLE[branch], { size: 13, anchor: "middle", weight: "bold" }));
    for (const v of niceTicks(lo, 1, 5)) {
      const y = y0 + h - ((v - lo) / (1 - lo)) * h;
      body.push(line(x0, y, x0 + w, y, "#e4e4e4"), text(x0 - 6, y, v.toFixed(2), { size: 11, anchor: "end", baseline: "middle" }));
    }
    const xOf = (k: number) => x0 + (S > 2 ? ((k - 1) / (S - 2)) * w : w / 2);
    for (const t of stepTicks(S - 1, 6).filter((t) => t >= 1)) {
      body.push(line(xOf(t), y0 + h, xOf(t), y0 + h + 5), text(xOf(t), y0 + h + 18, String(t), { size: 11, anchor: "middle" }));
    }
    body.push(line(x0, y0, x0, y0 + h), line(x0, y0 + h, x0 + w, y0 + h));
    body.push(text(x0 + w / 2, y0 + h + 40, "sampling step k", { size: 12, anchor: "middle" }));
    if (p === 0) body.push(text(x0 - 52, y0 + h / 2, "cosine similarity", { size: 12, anchor: "middle", rotate: -90 }));
    for (const t of result.tracks.filter((t) => t.branch === branch)) {
      const pts = consecutive(t.matrix, S).map((v, i): [number, number] => [xOf(i + 1), y0 + h - ((Math.max(v, lo) - lo) / (1 - lo)) * h]);
      body.push(polyline(pts, layerColour(t.layer)));
    }
  });
  // Legend: the layers' colours.
  const lx = 80, ly = H - 28;
  body.push(text(lx, ly + 4, "block:", { size: 11 }));
  result.layers.forEach((l, i) => {
    const x = lx + 46 + i * Math.min(44, (W - 160) / Math.max(result.layers.length, 1));
    body.push(rect(x, ly - 6, 14, 4, layerColour(l)));
    if (result.layers.length <= 20 || i % Math.ceil(result.layers.length / 20) === 0) {
      body.push(text(x + 7, ly + 12, String(l), { size: 10, anchor: "middle" }));
    }
  });
  return svgDocument(W, H, body);
}
