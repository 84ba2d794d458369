/**
 * Writing event bytes to a stream, and telling a closed reader apart from a real
 * failure. When the reader of stdout goes away (`fora generate --json | head -1`),
 * the next write fails with EPIPE; the NDJSON sink turns that into OutputClosed,
 * which the CLI catches to stop the run and exit 0 without a word.
 */

/** What the sinks write to: Deno.stdout, Deno.stderr, or a test double. */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/** Thrown by the NDJSON sink once its reader has closed the stream. Not a failure. */
export class OutputClosed extends Error {
  constructor() {
    super("the reader of the event stream closed it");
    this.name = "OutputClosed";
  }
}

export function isOutputClosed(e: unknown): e is OutputClosed {
  return e instanceof OutputClosed;
}

/** Whether a write failed because the reading end of a pipe or socket is gone. */
export function isBrokenPipe(e: unknown): boolean {
  if (e instanceof Deno.errors.BrokenPipe) return true;
  const code = (e as { code?: unknown } | null)?.code;
  return code === "EPIPE" || code === "ECONNRESET";
}

/** Writes all of `bytes`, looping over partial writes. */
export function writeAllSync(out: SyncWriter, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    const n = out.writeSync(bytes.subarray(done));
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}
