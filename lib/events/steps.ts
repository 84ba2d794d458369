/** The `step` and `cache` events of one denoising step, as every sampling command emits them. */
import type { StepReport } from "../fora/denoiser.ts";
import { roundMs, type Stamper } from "./stamp.ts";

export function emitStep(events: Stamper, r: StepReport): void {
  events.emit({
    event: "step",
    index: r.index,
    k: r.k,
    timestep: r.modelTime,
    kind: r.kind,
    ms: roundMs(r.ms),
    ...(r.indicator !== undefined ? { indicator: r.indicator } : {}),
  });
  events.emit({ event: "cache", index: r.index, attn: hitString(r.attnHits), mlp: hitString(r.mlpHits) });
}

/** One character per block: H where the cached output was reused, M where it was computed. */
function hitString(hits: boolean[]): string {
  return hits.map((h) => (h ? "H" : "M")).join("");
}

/** The signal's name from an aborted run's AbortSignal (see cli/signals.ts). */
export function signalName(signal: AbortSignal): "SIGINT" | "SIGTERM" {
  return signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT";
}
