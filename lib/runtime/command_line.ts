/**
 * ONNX Runtime 1.30 (libonnxruntime.so.1) reads /proc/self/cmdline while it creates its
 * environment (at the first session) and walks it recursively, about two stack frames per
 * byte. Under the usual 8 MiB main-thread stack (`ulimit -s 8192`) a command line of about
 * 28,800 bytes or more overflows the stack, and the process dies with no word about why (under
 * Deno: "overflowed its stack", exit 134; under Node: SIGSEGV). Measured, and reproduced
 * without fora, in docs/onnxruntime-long-command-line.md. fora refuses such a command line
 * before ONNX Runtime starts, with a limit that leaves room for the stack fora itself uses.
 */
import { ForaError } from "../errors.ts";

/** The largest command line, in bytes as /proc/self/cmdline holds it, that fora lets ONNX Runtime start with. */
export const MAX_COMMAND_LINE_BYTES = 24_000;

/**
 * The bytes of this process's /proc/self/cmdline (which Deno does not let fora read), from
 * above: the executable's path, the main module's, an allowance for the runtime's own flags,
 * and every argument, each with its terminating NUL.
 */
export function commandLineBytes(args: readonly string[] = Deno.args): number {
  const encoder = new TextEncoder();
  const bytes = (s: string) => encoder.encode(s).length + 1;
  const RUNTIME_FLAGS = 200; // "run -q --allow-read --allow-write ..." of `deno task fora`, with room to spare
  return bytes(Deno.execPath()) + bytes(Deno.mainModule) + RUNTIME_FLAGS + args.reduce((n, a) => n + bytes(a), 0);
}

/** Throws a usage error when the command line is too long for ONNX Runtime to start. */
export function checkCommandLine(bytes = commandLineBytes()): void {
  if (bytes <= MAX_COMMAND_LINE_BYTES) return;
  throw new ForaError(
    "usage",
    `the command line is about ${bytes} bytes, more than ONNX Runtime can start with (it crashes past about 28,800 ` +
      `bytes; fora stops at ${MAX_COMMAND_LINE_BYTES}): give many or long prompts with --prompt-file FILE, and many classes ` +
      `with --class-file FILE or comma lists (--class 1,2,3)`,
  );
}
