/**
 * The one-file HTML report of `fora similarity`: every picture embedded (data: URIs), the
 * numbers in tables, no external resource of any kind. A small script marks on the root
 * element how many of its images decoded (`data-images-loaded="N/M"`), so a headless
 * browser can check the page as a reader would see it.
 */
import { base64 } from "../plot/svg.ts";
import type { StepKind } from "../fora/policy.ts";
import { sketchStandardError } from "./gram.ts";
import { mib, type SimilarityResult } from "./run.ts";
import { BRANCH_TITLE, consecutive } from "./plots.ts";

export interface ReportPictures {
  /** Heatmap PNG per track, in result.tracks order. */
  heatmaps: Uint8Array[];
  consecutive: Uint8Array;
  /** PNGs of the generated samples. */
  samples: Uint8Array[];
}

export interface ReportSchedule {
  path: string;
  kinds: StepKind[];
  threshold: number;
  aggregate: string;
  maxReuse: number | null;
}

export function reportHtml(r: SimilarityResult, pics: ReportPictures, schedule: ReportSchedule | null, files: string[]): string {
  const S = r.steps;
  const img = (png: Uint8Array, alt: string, cls = "") =>
    `<img${cls ? ` class="${cls}"` : ""} alt="${esc(alt)}" src="data:image/png;base64,${base64(png)}">`;
  const mode = r.memory.mode === "exact"
    ? `exact (every feature vector kept: ${mib(r.memory.storeBytes)})`
    : `sketched: each feature vector of ${r.memory.featureSize} values reduced to k = ${r.memory.sketchDim} by a CountSketch (seed ${r.sketchSeed}), ` +
      `${mib(r.memory.storeBytes)} instead of ${mib(r.memory.exactBytes)}. Standard error of a similarity c at most ` +
      `&radic;3&middot;(1&minus;c&sup2;)/&radic;k: ${sketchStandardError(0, r.memory.sketchDim!).toFixed(4)} at c = 0, ` +
      `${sketchStandardError(0.95, r.memory.sketchDim!).toFixed(4)} at c = 0.95, ${
        sketchStandardError(0.99, r.memory.sketchDim!).toFixed(4)
      } at c = 0.99`;
  const rows = r.tracks.map((t) => {
    const c = consecutive(t.matrix, S);
    const mean = c.length ? c.reduce((a, b) => a + b, 0) / c.length : 1;
    const min = c.length ? Math.min(...c) : 1;
    const firstLast = t.matrix[S - 1];
    return `<tr><td>${t.layer}</td><td>${BRANCH_TITLE[t.branch]}</td><td>${mean.toFixed(4)}</td><td>${min.toFixed(4)}</td><td>${
      firstLast.toFixed(4)
    }</td></tr>`;
  }).join("\n");
  const heatmaps = r.tracks.map((t, i) =>
    `<figure>${img(pics.heatmaps[i], `heatmap block ${t.layer} ${t.branch}`)}<figcaption>block ${t.layer}, ${
      BRANCH_TITLE[t.branch]
    }</figcaption></figure>`
  ).join("\n");
  const strip = schedule
    ? `<p>Written to <code>${esc(schedule.path)}</code>: ${schedule.kinds.filter((k) => k === "full").length} full steps of ${S} ` +
      `(reuse while the ${schedule.aggregate} similarity to the last full step is at least ${schedule.threshold}` +
      `${schedule.maxReuse !== null ? `, at most ${schedule.maxReuse} reuse steps in a row` : ""}). ` +
      `Run it with <code>fora generate --schedule ${esc(schedule.path)}</code>.</p>\n<div class="strip">${
        schedule.kinds.map((k, i) => `<span class="${k}" title="step ${i}: ${k}"></span>`).join("")
      }</div><p class="legend"><span class="full"></span> full <span class="reuse"></span> reuse (step 0 on the left)</p>`
    : "<p>No schedule was requested (see <code>--suggest-schedule</code>).</p>";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fora similarity: ${esc(r.model)}</title>
<style>
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 2em auto; max-width: 1240px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figure img { width: 400px; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
img.wide { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
.strip { display: flex; height: 18px; border: 1px solid #999; }
.strip span { flex: 1; } .full { background: #e15759; } .reuse { background: #4e79a7; }
.legend span { display: inline-block; width: 12px; height: 12px; vertical-align: middle; }
.samples img { image-rendering: pixelated; border: 1px solid #ddd; margin-right: 8px; }
code { background: #f4f4f4; padding: 0 3px; }
</style>
</head>
<body>
<h1>Feature similarity across steps</h1>
<p>Model <code>${esc(r.model)}</code>; ${S} sampling steps, every step computed in full; model timesteps ${r.modelTimes[0]} &rarr; ${
    r.modelTimes[S - 1]
  }. Each heatmap compares a block's attention or MLP output (before gating, the tensor FORA caches) at every pair of steps: entry (i, j) is the cosine similarity between the features at step i and step j; step 0 (the noisiest) is top left.</p>
<p>Similarities: ${mode}.</p>
${pics.samples.length ? `<div class="samples">${pics.samples.map((p, i) => img(p, `sample ${i}`)).join("")}</div>` : ""}
<h2>Consecutive steps</h2>
${img(pics.consecutive, "similarity of consecutive steps", "wide")}
<table>
<tr><th>block</th><th>branch</th><th>mean cos(k&minus;1, k)</th><th>min cos(k&minus;1, k)</th><th>cos(first, last)</th></tr>
${rows}
</table>
<h2>Suggested recompute schedule</h2>
${strip}
<h2>Heatmaps</h2>
<div class="grid">
${heatmaps}
</div>
<h2>Files</h2>
<ul>${files.map((f) => `<li><code>${esc(f)}</code></li>`).join("")}</ul>
<script>
addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.documentElement.dataset.imagesLoaded = decoded + "/" + images.length;
});
</script>
</body>
</html>
`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
