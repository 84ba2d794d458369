/**
 * FORA's static caching policy and the plan it produces. A plan says, for every step
 * in execution order (position k = 0..S-1), whether the model runs in full or reuses
 * the cached features. FORA's own step index i counts down: i = S-1-k.
 */
import { ForaError } from "../errors.ts";

export type StepKind = "full" | "reuse";

export interface CachePlan {
  policy: { name: string; params: Record<string, number> };
  kinds: StepKind[];
}

/** Full when i == S-1 || i % N == 0 (DESIGN §1); N = 1 computes every step. */
export function staticIntervalPlan(steps: number, interval: number): CachePlan {
  if (!Number.isInteger(steps) || steps < 1) throw new ForaError("usage", `steps must be a whole number >= 1, got ${steps}`);
  if (!Number.isInteger(interval) || interval < 1 || interval > steps) {
    throw new ForaError("usage", `--cache-interval must be a whole number from 1 to the step count (${steps}), got ${interval}`);
  }
  const kinds = Array.from({ length: steps }, (_, k): StepKind => {
    const i = steps - 1 - k;
    return i === steps - 1 || i % interval === 0 ? "full" : "reuse";
  });
  return { policy: { name: "static", params: { interval } }, kinds };
}

/** For the full step at position k: the positions of the reuse steps that follow it. */
export function reuseRunAfter(kinds: StepKind[], k: number): number[] {
  const run: number[] = [];
  for (let j = k + 1; j < kinds.length && kinds[j] === "reuse"; j++) run.push(j);
  return run;
}

export function countFull(kinds: StepKind[]): number {
  return kinds.filter((k) => k === "full").length;
}
