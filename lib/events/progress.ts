/**
 * The human view of a run, on stderr: a bar redrawn in place with `\r`
 *
 *   [#########...............]  18/50  reuse  4.07 steps/s  ETA 0:08  cache 64% hits
 *
 * a "saved <path>" line per image (`fora sample`: a line per batch, with the shard's images
 * done so far), and at run end a newline and one summary line.
 * The ETA weights the steps left in the plan by the measured mean time of their
 * kind (full or reuse). It never writes to stdout, and a failing stderr only turns
 * the display off. With `redraw: false` (stderr is not a terminal) there is no bar,
 * only the "saved" and summary lines.
 */
import { type SyncWriter, writeAllSync } from "./output.ts";
import type { BatchEvent, EventSink, ForaEvent, RunEndEvent, StepKind } from "./types.ts";

export interface ProgressOptions {
  /** Default Deno.stderr. */
  out?: SyncWriter;
  /** Draw the bar and redraw it in place; false when stderr is not a terminal. Default true. */
  redraw?: boolean;
  /** Characters inside the bar's brackets. Default 24. */
  barWidth?: number;
}

/** What the display knows, updated from events; `progressLine` renders it. */
export interface ProgressState {
  /** S, from the plan. */
  steps: number;
  /** The plan's kind per execution position k. */
  plan: StepKind[];
  /** Steps finished in the current pass over the plan: last k + 1. */
  position: number;
  /** Kind of the last step. */
  current: StepKind | null;
  /** Steps and milliseconds measured so far, per kind, over the whole run. */
  measured: Record<StepKind, { count: number; ms: number }>;
  /** Block branches reused ("H") and looked at ("H" + "M"), over the whole run. */
  cacheHits: number;
  cacheLookups: number;
}

export function initialProgress(): ProgressState {
  return {
    steps: 0,
    plan: [],
    position: 0,
    current: null,
    measured: { full: { count: 0, ms: 0 }, reuse: { count: 0, ms: 0 } },
    cacheHits: 0,
    cacheLookups: 0,
  };
}

/** Folds one event into the state (in place). */
export function updateProgress(state: ProgressState, e: ForaEvent): void {
  switch (e.event) {
    case "run_start":
      state.steps = e.plan.steps;
      // Undecided steps (dynamic policy) count as full: the ETA errs long, not short.
      state.plan = e.plan.kind.map((k) => (k === "decide" ? "full" : k));
      break;
    case "step":
      state.position = e.k + 1;
      state.current = e.kind;
      state.measured[e.kind].count++;
      state.measured[e.kind].ms += e.ms;
      break;
    case "cache":
      for (const c of e.attn + e.mlp) {
        state.cacheLookups++;
        if (c === "H") state.cacheHits++;
      }
      break;
    case "image":
    case "batch":
    case "run_end":
      break;
  }
}

/** The line for a `fora sample` batch event. */
export function batchLine(e: BatchEvent): string {
  const last = e.first + e.count - 1;
  const images = `images ${e.first}..${last}`;
  switch (e.status) {
    case "written":
      return `saved ${e.path} (${images}; ${e.done}/${e.total} done)`;
    case "verified":
      return `kept ${e.path} from an earlier run (${images}, checked; ${e.done}/${e.total} done)`;
    case "invalid":
      return `resampling ${images}: ${e.reason ?? "its files fail their check"}`;
  }
}

export function progressLine(s: ProgressState, barWidth = 24): string {
  const fraction = s.steps > 0 ? Math.min(1, s.position / s.steps) : 0;
  const filled = Math.round(fraction * barWidth);
  const parts = [
    `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}]`,
    `${String(s.position).padStart(String(s.steps).length)}/${s.steps}`,
  ];
  if (s.current) parts.push(s.current.padEnd(5));
  const rate = stepsPerSecond(s);
  if (rate !== null) parts.push(`${formatRate(rate)} steps/s`);
  const eta = etaMs(s);
  parts.push(`ETA ${eta === null ? "-:--" : formatClock(eta)}`);
  if (s.cacheLookups > 0) {
    parts.push(`cache ${percent(s.cacheHits / s.cacheLookups)} hits`);
  }
  return parts.join("  ");
}

export function summaryLine(e: RunEndEvent, s: ProgressState): string {
  const t = e.totals;
  const head = e.status === "ok" ? "done:" : e.status === "error" ? "stopped by an error after" : "interrupted after";
  const steps = t.full_steps + t.reuse_steps;
  const parts = [
    `${head} ${steps} steps (${t.full_steps} full, ${t.reuse_steps} reuse) in ${formatSeconds(t.wall_ms)}`,
  ];
  if (steps > 0 && t.sampling_ms > 0) {
    parts.push(`${formatRate(steps / (t.sampling_ms / 1000))} steps/s`);
  }
  if (t.speedup_estimate !== null) {
    parts.push(`estimated speed-up ${t.speedup_estimate.toFixed(2)}x`);
  }
  if (s.cacheLookups > 0) {
    parts.push(`cache hits ${percent(s.cacheHits / s.cacheLookups)}`);
  }
  return parts.join(", ");
}

export function progressSink(options: ProgressOptions = {}): EventSink {
  const out = options.out ?? Deno.stderr;
  const redraw = options.redraw ?? true;
  const barWidth = options.barWidth ?? 24;
  const encoder = new TextEncoder();
  const state = initialProgress();
  let broken = false;
  /** Length of the bar now on the line; 0 when the cursor is at the start of an empty line. */
  let drawn = 0;
  let ended = false;

  const write = (text: string) => {
    if (broken) return;
    try {
      writeAllSync(out, encoder.encode(text));
    } catch {
      broken = true; // Progress is a courtesy: a closed or failing stderr only silences it.
    }
  };
  const draw = () => {
    if (!redraw || ended) return;
    const line = progressLine(state, barWidth);
    write("\r" + line.padEnd(drawn));
    drawn = line.length;
  };
  /** Prints a whole line where the bar is, then puts the bar back under it. */
  const printLine = (text: string) => {
    write(drawn > 0 ? "\r" + text.padEnd(drawn) + "\n" : text + "\n");
    drawn = 0;
  };
  const endBar = () => {
    if (drawn > 0) write("\n");
    drawn = 0;
  };

  return {
    kind: "progress",
    emit(e) {
      if (ended) return;
      updateProgress(state, e);
      switch (e.event) {
        case "run_start":
        case "step":
          draw();
          break;
        case "cache":
          break; // Shown with the next step's redraw.
        case "image":
          printLine(`saved ${e.path}`);
          draw();
          break;
        case "batch":
          printLine(batchLine(e));
          draw();
          break;
        case "run_end":
          draw();
          endBar();
          printLine(summaryLine(e, state));
          ended = true;
          break;
      }
    },
    close() {
      endBar();
      ended = true;
    },
  };
}

function stepsPerSecond(s: ProgressState): number | null {
  const count = s.measured.full.count + s.measured.reuse.count;
  const ms = s.measured.full.ms + s.measured.reuse.ms;
  return count > 0 && ms > 0 ? count / (ms / 1000) : null;
}

/** Time left in the current pass: each remaining step at its kind's mean time. */
function etaMs(s: ProgressState): number | null {
  const { full, reuse } = s.measured;
  const count = full.count + reuse.count;
  if (count === 0) return null;
  const overall = (full.ms + reuse.ms) / count;
  const mean = (k: StepKind) => s.measured[k].count > 0 ? s.measured[k].ms / s.measured[k].count : overall;
  let left = 0;
  for (let k = s.position; k < s.steps; k++) left += mean(s.plan[k] ?? "full");
  return left;
}

function formatRate(rate: number): string {
  return rate < 10 ? rate.toFixed(2) : rate.toFixed(1);
}

function formatClock(ms: number): string {
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600),
    m = Math.floor((total % 3600) / 60),
    sec = total % 60;
  const ss = String(sec).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function formatSeconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : formatClock(ms);
}

function percent(x: number): string {
  return `${Math.round(x * 100)}%`;
}
