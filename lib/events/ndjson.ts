/**
 * The machine-readable event stream: one JSON object per line (NDJSON), each a
 * ForaEvent as schema.json describes it. When the reader closes the stream early
 * (`fora generate --json | head -1`), `emit` throws OutputClosed, now and on every
 * later call; the CLI catches it, stops the run and exits 0 with nothing on stderr.
 */
import { ForaError } from "../errors.ts";
import { isBrokenPipe, OutputClosed, type SyncWriter, writeAllSync } from "./output.ts";
import type { EventSink, ForaEvent } from "./types.ts";

export function ndjsonSink(out: SyncWriter = Deno.stdout): EventSink {
  const lines = ndjsonWriter<ForaEvent>(out);
  return { kind: "ndjson", emit: lines.write, close() {} };
}

/**
 * One JSON object per line on `out`, for any record type (the generate events above,
 * or the records of commands such as `fora eval`), with the same closed-pipe handling.
 */
export function ndjsonWriter<T extends object>(out: SyncWriter = Deno.stdout): { write(record: T): void } {
  const encoder = new TextEncoder();
  let closed = false;
  return {
    write(record: T) {
      if (closed) throw new OutputClosed();
      try {
        writeAllSync(out, encoder.encode(JSON.stringify(record) + "\n"));
      } catch (e) {
        if (isBrokenPipe(e)) {
          closed = true;
          throw new OutputClosed();
        }
        throw new ForaError(
          "io",
          `could not write the event stream to standard output: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    },
  };
}
