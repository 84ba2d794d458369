/**
 * `fora profile --chart FILE.png`: on the left, the kernel time of a full step per block,
 * stacked by branch (adaLN, norm, attention, gated residual, MLP); on the right, a full and
 * a reuse step side by side, stacked by what their time went to.
 */
import { category } from "../plot/colormap.ts";
import { writeSvgAsPng } from "../plot/raster.ts";
import { line, rect, svgDocument, text, zeroBasedScale } from "../plot/svg.ts";
import { BLOCK_BRANCHES } from "./parts.ts";
import { perBlock } from "./report.ts";
import type { PhaseProfile, ProfileReport } from "./run.ts";

const WIDTH = 980, HEIGHT = 530;
const BRANCH_COLOR: Record<string, string> = Object.fromEntries(BLOCK_BRANCHES.map((b, i) => [b, category(i)]));

/** Groups of a whole step, bottom to top. */
const STEP_GROUPS: { label: string; color: string; match: (part: string, branch: string | null) => boolean }[] = [
  { label: "attention", color: BRANCH_COLOR.attn, match: (p, b) => p === "block" && b === "attn" },
  { label: "MLP", color: BRANCH_COLOR.mlp, match: (p, b) => p === "block" && b === "mlp" },
  { label: "adaLN, norms, residuals", color: BRANCH_COLOR.norm, match: (p, b) => p === "block" && b !== "attn" && b !== "mlp" },
  {
    label: "embedders",
    color: category(6),
    match: (p) => ["x_embedder", "t_embedder", "y_embedder", "conditioning", "text_encoder"].includes(p),
  },
  { label: "FORA residuals / cache", color: category(7), match: (p) => p === "residuals" || p === "cache" },
  { label: "final layer, guidance", color: category(8), match: (p) => p === "final_layer" || p === "guidance" },
  { label: "other", color: category(9), match: (p) => p === "other" || p === "vae" },
];

export function profileChartSvg(report: ProfileReport): string {
  const body: string[] = [];
  const full = report.phases.find((p) => p.phase === "full") ?? report.phases.find((p) => p.phase === "literal");
  const reuse = report.phases.find((p) => p.phase === "reuse");
  const decode = report.phases.find((p) => p.phase === "decode");
  body.push(text(WIDTH / 2, 24, `fora profile: ${report.model}`, { size: 15, anchor: "middle", weight: "bold" }));
  const sub = [
    full ? `full step ${msPerRun(full).toFixed(3)} ms` : null,
    reuse ? `reuse step ${msPerRun(reuse).toFixed(3)} ms` : null,
    decode ? `VAE decode ${msPerRun(decode).toFixed(3)} ms` : null,
    "(kernel time per run)",
  ].filter(Boolean).join(", ");
  body.push(text(WIDTH / 2, 44, sub, { size: 12, anchor: "middle", fill: "#555555" }));

  // Left: per block, stacked by branch.
  const left = { x: 70, y: 90, w: 560, h: 300 };
  if (full) {
    const blocks = perBlock(full), n = Math.max(full.runs, 1);
    const branches = BLOCK_BRANCHES.filter((b) => blocks.some(([, m]) => m.has(b)));
    const totals = blocks.map(([, m]) => [...m.values()].reduce((a, b) => a + b, 0) / 1000 / n);
    const { ticks, top } = zeroBasedScale(Math.max(...totals), 5);
    axes(body, left, ticks, top, "ms per full step", "transformer block");
    const slot = left.w / Math.max(blocks.length, 1), bw = Math.max(1, slot * 0.72);
    blocks.forEach(([k, m], i) => {
      let y = left.y + left.h;
      const x = left.x + i * slot + (slot - bw) / 2;
      for (const b of branches) {
        const h = ((m.get(b) ?? 0) / 1000 / n / top) * left.h;
        body.push(rect(x, y - h, bw, h, BRANCH_COLOR[b]));
        y -= h;
      }
      const every = Math.ceil(blocks.length / 28);
      if (i % every === 0) body.push(text(x + bw / 2, left.y + left.h + 16, String(k), { size: 11, anchor: "middle" }));
    });
    body.push(
      text(left.x + left.w / 2, left.y - 14, "full step: time per block and branch", { size: 13, anchor: "middle", weight: "bold" }),
    );
    branches.forEach((b, i) => legend(body, left.x + i * 100, left.y + left.h + 52, BRANCH_COLOR[b], b));
  }

  // Right: whole steps, stacked by group.
  const right = { x: 730, y: 90, w: 200, h: 300 };
  const steps = [full && ["full", full], reuse && ["reuse", reuse]].filter(Boolean) as [string, PhaseProfile][];
  if (steps.length) {
    const sums = steps.map(([, p]) => STEP_GROUPS.map((g) => groupMs(p, g.match)));
    const { ticks, top } = zeroBasedScale(Math.max(...sums.map((s) => s.reduce((a, b) => a + b, 0))), 5);
    axes(body, right, ticks, top, "ms per step", "");
    const slot = right.w / steps.length, bw = slot * 0.6;
    steps.forEach(([label], i) => {
      let y = right.y + right.h;
      const x = right.x + i * slot + (slot - bw) / 2;
      STEP_GROUPS.forEach((g, j) => {
        const h = (sums[i][j] / top) * right.h;
        body.push(rect(x, y - h, bw, h, g.color));
        y -= h;
      });
      body.push(text(x + bw / 2, right.y + right.h + 16, `${label} step`, { size: 11, anchor: "middle" }));
    });
    body.push(text(right.x + right.w / 2, right.y - 14, "whole steps", { size: 13, anchor: "middle", weight: "bold" }));
    STEP_GROUPS.forEach((g, i) => legend(body, 70 + (i % 4) * 230, right.y + right.h + 92 + Math.floor(i / 4) * 20, g.color, g.label));
  }
  return svgDocument(WIDTH, HEIGHT, body);
}

export async function writeProfileChart(path: string, report: ProfileReport): Promise<void> {
  await writeSvgAsPng(path, profileChartSvg(report));
}

function msPerRun(p: PhaseProfile): number {
  return p.kernelUs / 1000 / Math.max(p.runs, 1);
}

function groupMs(p: PhaseProfile, match: (part: string, branch: string | null) => boolean): number {
  const us = p.parts.filter((t) => match(t.key.part, t.key.branch)).reduce((a, t) => a + t.us, 0);
  return us / 1000 / Math.max(p.runs, 1);
}

function axes(
  body: string[],
  r: { x: number; y: number; w: number; h: number },
  ticks: number[],
  top: number,
  yLabel: string,
  xLabel: string,
) {
  for (const t of ticks) {
    const y = r.y + r.h - (t / top) * r.h;
    body.push(line(r.x, y, r.x + r.w, y, "#e4e4e4"));
    body.push(text(r.x - 6, y, formatTick(t), { size: 11, anchor: "end", baseline: "middle" }));
  }
  body.push(line(r.x, r.y, r.x, r.y + r.h), line(r.x, r.y + r.h, r.x + r.w, r.y + r.h));
  body.push(text(r.x - 48, r.y + r.h / 2, yLabel, { size: 12, anchor: "middle", rotate: -90 }));
  if (xLabel) body.push(text(r.x + r.w / 2, r.y + r.h + 34, xLabel, { size: 12, anchor: "middle" }));
}

function legend(body: string[], x: number, y: number, color: string, label: string) {
  body.push(rect(x, y - 10, 12, 12, color), text(x + 17, y, label, { size: 11 }));
}

function formatTick(v: number): string {
  return Math.abs(v) >= 100 || v === 0 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
}
