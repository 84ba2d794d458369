/**
 * The machine-readable event stream: one JSON object per line (NDJSON), each a
 * ForaEvent as schema.json describes it. When the reader closes the stream early
 * (`fora generate --json | head -1`), `emit` throws OutputClosed, now and on every
 * later call; the CLI catches it, stops the run and exits 0 with nothing on stderr.
 */
import { isOutputClosed, OutputClosed, type SyncWriter, writeStdout } from "./output.ts";
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
  let closed = false;
  return {
    write(record: T) {
      if (closed) throw new OutputClosed();
      try {
        writeStdout(JSON.stringify(record) + "\n", out);
      } catch (e) {
        if (isOutputClosed(e)) closed = true;
        throw e;
      }
    },
  };
}
