/**
 * The machine-readable event stream: one JSON object per line (NDJSON), each a
 * ForaEvent as schema.json describes it. When the reader closes the stream early
 * (`fora generate --json | head -1`), `emit` throws OutputClosed, now and on every
 * later call; the CLI catches it, stops the run and exits 0 with nothing on stderr.
 */
import { ForaError } from "../errors.ts";
import {
  isBrokenPipe,
  OutputClosed,
  type SyncWriter,
  writeAllSync,
} from "./output.ts";
import type { EventSink, ForaEvent } from "./types.ts";

export function ndjsonSink(out: SyncWriter = Deno.stdout): EventSink {
  const encoder = new TextEncoder();
  let closed = false;
  return {
    kind: "ndjson",
    emit(event: ForaEvent) {
      if (closed) throw new OutputClosed();
      try {
        writeAllSync(out, encoder.encode(JSON.stringify(event) + "\n"));
      } catch (e) {
        if (isBrokenPipe(e)) {
          closed = true;
          throw new OutputClosed();
        }
        throw new ForaError(
          "io",
          `could not write the event stream to standard output: ${
            e instanceof Error ? e.message : String(e)
          }`,
        );
      }
    },
    close() {},
  };
}
