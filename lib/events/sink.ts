/**
 * Picks where a run's events go. NDJSON on stdout when `--json` is given or stdout
 * is not a terminal (piped or redirected: a program is reading); otherwise the
 * progress display on stderr. One sink per run, so a stream never carries both.
 */
import { ndjsonSink } from "./ndjson.ts";
import type { SyncWriter } from "./output.ts";
import { progressSink } from "./progress.ts";
import type { EventSink } from "./types.ts";

export interface SinkChoice {
  /** `--json` was given. */
  json: boolean;
  /** Deno.stdout.isTerminal(). */
  stdoutIsTerminal: boolean;
  /** Deno.stderr.isTerminal(): without a terminal the display prints lines, no bar. Default true. */
  stderrIsTerminal?: boolean;
  /** Streams, for tests. Default Deno.stdout and Deno.stderr. */
  stdout?: SyncWriter;
  stderr?: SyncWriter;
}

export function chooseSink(choice: SinkChoice): EventSink {
  if (choice.json || !choice.stdoutIsTerminal) {
    return ndjsonSink(choice.stdout ?? Deno.stdout);
  }
  return progressSink({
    out: choice.stderr ?? Deno.stderr,
    redraw: choice.stderrIsTerminal ?? true,
  });
}
