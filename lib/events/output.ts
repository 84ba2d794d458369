/**
 * Writing to standard output, and telling a closed reader apart from a real failure.
 * Everything a command prints as its result (event streams, tables, help, --version)
 * goes through writeStdout. When the reader of stdout goes away
 * (`fora generate --json | head -1`), the next write fails with EPIPE and becomes
 * OutputClosed, which the CLI catches to stop and exit 0 without a word; any other
 * failure (a full disk under `> file`, `> /dev/full`) is a one-line ForaError, exit 1.
 */
import { ForaError } from "../errors.ts";

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

/** Writes `text` to `out` (default standard output); failures as the module comment says. */
export function writeStdout(text: string, out: SyncWriter = Deno.stdout): void {
  try {
    writeAllSync(out, new TextEncoder().encode(text));
  } catch (e) {
    if (isBrokenPipe(e)) throw new OutputClosed();
    throw new ForaError("io", `cannot write to standard output: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** writeStdout of `text` and a newline: the commands' console.log. */
export function printLine(text: string): void {
  writeStdout(text + "\n");
}
