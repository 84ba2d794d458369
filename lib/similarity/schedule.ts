/**
 * From measured similarities to a recompute schedule. Going through the steps in order,
 * with `last` the most recent full step: step k reuses the cache while the features at k
 * stay similar enough to those computed at `last`,
 *
 *     aggregate over layers and branches of cos(features[last], features[k]) >= threshold
 *
 * (and, with maxReuse, while at most maxReuse steps in a row reuse); otherwise step k
 * runs in full and becomes `last`. Step 0 is always full. `mean` aggregates the chosen
 * layers and branches by their mean similarity, `min` by the least similar one.
 */
import type { StepKind } from "../fora/policy.ts";
import type { Track } from "./run.ts";

export type Aggregate = "mean" | "min";

export interface ScheduleRule {
  threshold: number;
  aggregate: Aggregate;
  /** Longest run of consecutive reuse steps; unlimited when undefined. */
  maxReuse?: number;
}

export function suggestSchedule(tracks: Track[], steps: number, rule: ScheduleRule): StepKind[] {
  const kinds: StepKind[] = [];
  let last = 0;
  for (let k = 0; k < steps; k++) {
    if (k === 0) {
      kinds.push("full");
      continue;
    }
    const sims = tracks.map((t) => t.matrix[last * steps + k]);
    const s = sims.length === 0 ? -Infinity : rule.aggregate === "min" ? Math.min(...sims) : sims.reduce((a, b) => a + b, 0) / sims.length;
    const runOk = rule.maxReuse === undefined || k - last <= rule.maxReuse;
    if (s >= rule.threshold && runOk) kinds.push("reuse");
    else {
      kinds.push("full");
      last = k;
    }
  }
  return kinds;
}
