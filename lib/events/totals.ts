/**
 * Step totals for `run_end`: how many steps ran full and reused, and the estimated
 * speed-up of caching over computing every step, from the measured step times:
 *
 *   speedup = S · mean_full / (full · mean_full + reuse · mean_reuse),  S = full + reuse
 *
 * i.e. the time all S steps would have taken at the mean full-step cost, over the
 * time the planned mix takes at the measured means.
 */
import { roundMs } from "./stamp.ts";
import type { RunTotals, StepKind } from "./types.ts";

export interface StepTime {
  kind: StepKind;
  ms: number;
}

export function summarizeSteps(
  steps: readonly StepTime[],
): Pick<RunTotals, "full_steps" | "reuse_steps" | "speedup_estimate"> {
  let full = 0, reuse = 0, fullMs = 0, reuseMs = 0;
  for (const s of steps) {
    if (s.kind === "full") {
      full++;
      fullMs += s.ms;
    } else {
      reuse++;
      reuseMs += s.ms;
    }
  }
  return {
    full_steps: full,
    reuse_steps: reuse,
    speedup_estimate: speedupEstimate(full, fullMs, reuse, reuseMs),
  };
}

/** Null when there is no full step to measure (or the times are all zero). */
export function speedupEstimate(
  full: number,
  fullMs: number,
  reuse: number,
  reuseMs: number,
): number | null {
  if (full === 0) return null;
  const meanFull = fullMs / full;
  const meanReuse = reuse === 0 ? 0 : reuseMs / reuse;
  const planned = full * meanFull + reuse * meanReuse;
  const speedup = ((full + reuse) * meanFull) / planned;
  return Number.isFinite(speedup) ? speedup : null;
}

/**
 * The time spent in these steps: the sampling time of a batch that did not finish (interrupted,
 * or stopped by an error), whose own sampling time was never returned.
 */
export function stepsMs(steps: readonly StepTime[]): number {
  return steps.reduce((sum, s) => sum + s.ms, 0);
}

/** run_end totals from the steps seen so far and the measured phases. */
export function runTotals(steps: readonly StepTime[], samplingMs: number, decodeMs: number, wallMs: number): RunTotals {
  const s = summarizeSteps(steps);
  return {
    full_steps: s.full_steps,
    reuse_steps: s.reuse_steps,
    sampling_ms: roundMs(samplingMs),
    decode_ms: roundMs(decodeMs),
    wall_ms: roundMs(wallMs),
    speedup_estimate: s.speedup_estimate,
  };
}
