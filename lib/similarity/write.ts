/**
 * Everything `fora similarity` writes into its --out folder:
 *
 *   block<L>-<branch>.npy   the S x S cosine matrix (float32), one per layer and branch
 *   block<L>-<branch>.png   its heatmap
 *   consecutive.png         similarity of consecutive steps, per block
 *   summary.json            the numbers: mode, error bound, per-track statistics, file names
 *   report.html             one self-contained page with all of the above
 *
 * Every file is written atomically.
 */
import { join } from "node:path";
import * as fastPng from "fast-png";
import { writeFileAtomic } from "../io/atomic.ts";
import { writeNpy } from "../io/npy.ts";
import { svgToPng } from "../plot/raster.ts";
import { ForaError } from "../errors.ts";
import { sketchStandardError } from "./gram.ts";
import { reportHtml, type ReportSchedule } from "./html.ts";
import { consecutive, consecutiveSvg, heatmapSvg } from "./plots.ts";
import type { SimilarityResult } from "./run.ts";

export interface TrackSummary {
  layer: number;
  branch: string;
  npy: string;
  heatmap: string;
  /** Mean and minimum of cos(step k-1, step k), and cos(first step, last step). */
  consecutive_mean: number;
  consecutive_min: number;
  first_last: number;
}

export interface SimilaritySummary {
  model: string;
  steps: number;
  model_times: number[];
  mode: "exact" | "sketch";
  feature_size: number;
  sketch_dim: number | null;
  sketch_seed: number | null;
  /** With the sketch: bound on the standard error at similarity 0, 0.95 and 0.99. */
  sketch_standard_error: { at_0: number; at_0_95: number; at_0_99: number } | null;
  store_bytes: number;
  tracks: TrackSummary[];
  consecutive: string;
  report: string;
  schedule: string | null;
}

export async function writeSimilarityOutputs(
  r: SimilarityResult,
  out: string,
  schedule: ReportSchedule | null,
): Promise<SimilaritySummary> {
  try {
    await Deno.mkdir(out, { recursive: true });
  } catch (e) {
    throw new ForaError("io", `--out ${out}: cannot create the folder (${(e as Error).message})`);
  }
  const S = r.steps, width = String(Math.max(r.depth - 1, 0)).length;
  const tracks: TrackSummary[] = [], heatmaps: Uint8Array[] = [];
  for (const t of r.tracks) {
    const stem = `block${String(t.layer).padStart(width, "0")}-${t.branch}`;
    const npy = join(out, `${stem}.npy`), heatmap = join(out, `${stem}.png`);
    await writeNpy(npy, { shape: [S, S], data: Float32Array.from(t.matrix) });
    const png = await svgToPng(heatmapSvg(t, S, r.model));
    await writeFileAtomic(heatmap, [png], "PNG image");
    heatmaps.push(png);
    const c = consecutive(t.matrix, S);
    tracks.push({
      layer: t.layer,
      branch: t.branch,
      npy,
      heatmap,
      consecutive_mean: round(c.length ? c.reduce((a, b) => a + b, 0) / c.length : 1),
      consecutive_min: round(c.length ? Math.min(...c) : 1),
      first_last: round(t.matrix[S - 1]),
    });
  }
  const consecutivePath = join(out, "consecutive.png");
  const consecutivePng = await svgToPng(consecutiveSvg(r));
  await writeFileAtomic(consecutivePath, [consecutivePng], "PNG image");
  const samples = r.images.map((im) =>
    fastPng.encode({ width: im.width, height: im.height, channels: im.channels, depth: 8, data: im.data })
  );
  const reportPath = join(out, "report.html"), summaryPath = join(out, "summary.json");
  const files = [...tracks.flatMap((t) => [t.npy, t.heatmap]), consecutivePath, summaryPath, ...(schedule ? [schedule.path] : [])];
  const html = reportHtml(r, { heatmaps, consecutive: consecutivePng, samples }, schedule, files);
  await writeFileAtomic(reportPath, [new TextEncoder().encode(html)], "HTML report");
  const k = r.memory.sketchDim;
  const summary: SimilaritySummary = {
    model: r.model,
    steps: S,
    model_times: r.modelTimes,
    mode: r.memory.mode,
    feature_size: r.memory.featureSize,
    sketch_dim: k,
    sketch_seed: r.sketchSeed,
    sketch_standard_error: k === null ? null : {
      at_0: round(sketchStandardError(0, k)),
      at_0_95: round(sketchStandardError(0.95, k)),
      at_0_99: round(sketchStandardError(0.99, k)),
    },
    store_bytes: r.memory.storeBytes,
    tracks,
    consecutive: consecutivePath,
    report: reportPath,
    schedule: schedule?.path ?? null,
  };
  await writeFileAtomic(summaryPath, [new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n")], "summary");
  return summary;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
