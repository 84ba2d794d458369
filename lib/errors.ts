/**
 * Every failure a user can cause (bad flags, corrupt weights, a broken bundle) is
 * raised as a ForaError: a one-line message that names what is wrong and how to fix
 * it. The CLI prints `error: <message>` and exits non-zero; anything that is not a
 * ForaError is a bug and is printed with its stack. A message never carries Deno's advice
 * to grant every permission (withoutPermissionAdvice).
 */
export type ErrorCode =
  | "usage"
  | "weights"
  | "bundle"
  | "graph"
  | "io"
  | "runtime"
  | "interrupted";

export class ForaError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(withoutPermissionAdvice(message));
    this.name = "ForaError";
    this.code = code;
  }
}

export function isForaError(e: unknown): e is ForaError {
  return e instanceof ForaError;
}

/** A run stopped by SIGINT or SIGTERM at a step boundary; the CLI exits 128 + signal number. */
export function interrupted(signal: "SIGINT" | "SIGTERM"): ForaError {
  return new ForaError("interrupted", `interrupted by ${signal}`);
}

export function isInterrupted(e: unknown): e is ForaError {
  return e instanceof ForaError && e.code === "interrupted";
}

/** Exit status for a run interrupted by `message`'s signal: 130 for SIGINT, 143 for SIGTERM. */
export function interruptedExitCode(e: ForaError): number {
  return e.message.includes("SIGTERM") ? 143 : 130;
}

/**
 * `text` as one printable line: control characters (newlines, terminal escape sequences,
 * C1 controls such as the 8-bit CSI) and the Unicode line separators written as \uXXXX.
 * For any text from a file or a flag that reaches the terminal: a message, a table, a name.
 */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Deno keeps devices and system files (/dev/stdin, /proc/..., /sys/...) from any program not
 * run with every permission, and says so as `Requires all access to "PATH", run again with the
 * --allow-all flag`: advice to give fora every permission, which is wrong. Messages that
 * quote it say plainly what fora reads instead.
 */
export function withoutPermissionAdvice(message: string): string {
  return message.replace(
    /(?:NotCapable: )?Requires all access to "([^"]*)", run again with the --allow-all flag/g,
    (_, path: string) => `${path} is a device or system file, which fora does not open (regular files and folders only)`,
  );
}
