/**
 * A profile as rows (one per phase and part, the NDJSON objects of `fora profile --json`)
 * and as the terminal table.
 */
import { BLOCK_BRANCHES, partLabel } from "./parts.ts";
import type { Phase, PhaseProfile, ProfileReport } from "./run.ts";

export interface ProfileRow {
  /** Graph the time was spent in: full steps, reuse steps, VAE decode (or the literal path). */
  kind: Phase;
  /** A model part ("block", "t_embedder", "vae", ...), or "total" for the phase's sum. */
  part: string;
  block: number | null;
  /** attn, mlp, adaln, norm, residual (blocks); a decoder stage (vae); else null. */
  branch: string | null;
  /** Kernel milliseconds summed over the analysed runs, and per run (step). */
  ms: number;
  ms_per_step: number;
  /** Fraction of the phase's kernel time. */
  share: number;
  /** Analytic FLOPs over the analysed runs, and per run. */
  flops: number;
  flops_per_step: number;
  /** Bytes the kernels read and wrote (activations, weights, outputs), per run. */
  bytes_per_step: number;
  /** Achieved GFLOP/s: flops / kernel time. */
  gflops: number;
  /** Kernels per run. */
  kernels: number;
  /** Runs analysed (steps of this kind; 1 for the decode). */
  runs: number;
}

export function profileRows(report: ProfileReport): ProfileRow[] {
  const rows: ProfileRow[] = [];
  for (const p of report.phases) {
    const n = Math.max(p.runs, 1);
    for (const t of p.parts) {
      rows.push(row(p, t.key.part, t.key.block, t.key.branch, t.us, t.flops, t.bytes, t.kernels, n));
    }
    const sum = (f: (t: PhaseProfile["parts"][number]) => number) => p.parts.reduce((a, t) => a + f(t), 0);
    rows.push(row(p, "total", null, null, p.kernelUs, sum((t) => t.flops), sum((t) => t.bytes), sum((t) => t.kernels), n));
  }
  return rows;
}

function row(
  p: PhaseProfile,
  part: string,
  block: number | null,
  branch: string | null,
  us: number,
  flops: number,
  bytes: number,
  kernels: number,
  runs: number,
): ProfileRow {
  return {
    kind: p.phase,
    part,
    block,
    branch,
    ms: round(us / 1000, 4),
    ms_per_step: round(us / 1000 / runs, 4),
    share: p.kernelUs > 0 ? round(us / p.kernelUs, 5) : 0,
    flops,
    flops_per_step: Math.round(flops / runs),
    bytes_per_step: Math.round(bytes / runs),
    gflops: us > 0 ? round(flops / us / 1000, 3) : 0,
    kernels: Math.round(kernels / runs),
    runs: p.runs,
  };
}

/** Share of a phase's kernel time attributed to named parts (not "other"). */
export function namedShare(p: PhaseProfile): number {
  const other = p.parts.filter((t) => t.key.part === "other").reduce((a, t) => a + t.us, 0);
  return p.kernelUs > 0 ? 1 - other / p.kernelUs : 1;
}

/** Per-branch sums over all blocks of a phase, in microseconds. */
export function branchTotals(p: PhaseProfile): Map<string, { us: number; flops: number; bytes: number }> {
  const out = new Map<string, { us: number; flops: number; bytes: number }>();
  for (const t of p.parts) {
    if (t.key.part !== "block" || !t.key.branch) continue;
    const s = out.get(t.key.branch) ?? { us: 0, flops: 0, bytes: 0 };
    s.us += t.us;
    s.flops += t.flops;
    s.bytes += t.bytes;
    out.set(t.key.branch, s);
  }
  return out;
}

const PHASE_TITLE: Record<Phase, string> = {
  full: "full steps",
  reuse: "reuse steps",
  partial_full: "full steps of partial reuse",
  partial_reuse: "partial-reuse steps",
  probe: "dynamic policy's probe",
  decode: "VAE decode",
  literal: "literal per-block steps",
};

export function formatProfile(report: ProfileReport): string {
  const out: string[] = [];
  const full = report.plan.kinds.filter((k) => k === "full").length;
  out.push(
    `profile of ${report.model}: ${report.steps} steps (${full} full, ${report.steps - full} reuse; policy ${report.plan.policy.name}), ` +
      `sampling ${fmt(report.samplingMs, 1)} ms, decode ${fmt(report.decodeMs, 1)} ms`,
  );
  for (const p of report.phases) {
    const n = Math.max(p.runs, 1);
    out.push("");
    out.push(
      `${PHASE_TITLE[p.phase]} (${p.graph}): ${p.runs} run${p.runs === 1 ? "" : "s"} analysed` +
        (p.skippedRuns ? ` (+${p.skippedRuns} warm-up left out)` : "") +
        `; kernels ${fmt(p.kernelUs / 1000 / n, 3)} ms of ${fmt(p.runUs / 1000 / n, 3)} ms per run; ` +
        `${fmt(100 * namedShare(p), 1)}% of kernel time in named parts`,
    );
    const lines: string[][] = [["part", "ms/step", "share", "MFLOP/step", "MB/step", "GFLOP/s"]];
    const line = (label: string, us: number, flops: number, bytes: number) =>
      lines.push([
        label,
        fmt(us / 1000 / n, 3),
        `${fmt((100 * us) / Math.max(p.kernelUs, 1e-9), 1)}%`,
        fmt(flops / n / 1e6, 2),
        fmt(bytes / n / 1e6, 2),
        us > 0 ? fmt(flops / us / 1000, 2) : "-",
      ]);
    const branches = branchTotals(p);
    let blocksShown = false;
    for (const t of p.parts) {
      if (t.key.part === "block") {
        if (blocksShown) continue;
        blocksShown = true;
        for (const b of BLOCK_BRANCHES) {
          const s = branches.get(b);
          if (s) line(`blocks: ${b}`, s.us, s.flops, s.bytes);
        }
        continue;
      }
      line(partLabel(t.key), t.us, t.flops, t.bytes);
    }
    out.push(...table(lines));
    const blocks = perBlock(p);
    if (blocks.length > 0) {
      const present = BLOCK_BRANCHES.filter((b) => branches.has(b));
      const grid: string[][] = [["block", ...present.map((b) => `${b} ms`), "total ms"]];
      for (const [k, m] of blocks) {
        const total = [...m.values()].reduce((a, b) => a + b, 0);
        grid.push([String(k), ...present.map((b) => fmt((m.get(b) ?? 0) / 1000 / n, 3)), fmt(total / 1000 / n, 3)]);
      }
      out.push("", ...table(grid));
    }
  }
  return out.join("\n");
}

/** Per block: branch -> microseconds. */
export function perBlock(p: PhaseProfile): [number, Map<string, number>][] {
  const m = new Map<number, Map<string, number>>();
  for (const t of p.parts) {
    if (t.key.part !== "block" || t.key.block === null || !t.key.branch) continue;
    const b = m.get(t.key.block) ?? new Map<string, number>();
    b.set(t.key.branch, (b.get(t.key.branch) ?? 0) + t.us);
    m.set(t.key.block, b);
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd());
}

function fmt(x: number, digits: number): string {
  return x.toFixed(digits);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
