/**
 * Run identity and time: `stamper` wraps the run's one callback so that the code
 * emitting events writes only their bodies, and every event gets the same `run_id`
 * and its `time_ms` since the stamper was made (the run's start).
 */
import type { EmitEvent, EventBody, ForaEvent } from "./types.ts";

export interface Stamper {
  readonly runId: string;
  /** Stamps `body` with run_id and time_ms and passes it on. */
  emit(body: EventBody): void;
  /** Milliseconds since the run started, on the clock `time_ms` uses. */
  elapsedMs(): number;
}

export function newRunId(): string {
  return crypto.randomUUID();
}

export function stamper(
  emit: EmitEvent,
  options: { runId?: string; now?: () => number } = {},
): Stamper {
  const now = options.now ?? (() => performance.now());
  const runId = options.runId ?? newRunId();
  const start = now();
  const elapsedMs = () => roundMs(now() - start);
  return {
    runId,
    elapsedMs,
    emit(body) {
      // Tag first, then identity and time, then the body's own fields.
      const { event, ...fields } = body;
      emit(
        { event, run_id: runId, time_ms: elapsedMs(), ...fields } as ForaEvent,
      );
    },
  };
}

/** Microsecond resolution is plenty and keeps the JSON short. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
