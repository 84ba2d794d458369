/** Runs the real CLI in a subprocess, exactly as `deno task fora` does. */
import { join } from "node:path";
import { ROOT } from "../bundle/helpers.ts";

export const CLI_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys"];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runFora(...args: string[]): Promise<CliResult> {
  return await runForaWith({}, ...args);
}

/**
 * runFora with a working folder (default the repository root) and a time limit after which
 * the child is killed (then its exit status fails the test).
 */
export async function runForaWith(opts: { cwd?: string; seconds?: number }, ...args: string[]): Promise<CliResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", ...CLI_PERMISSIONS, join(ROOT, "cli", "main.ts"), ...args],
    cwd: opts.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: opts.seconds === undefined ? undefined : AbortSignal.timeout(opts.seconds * 1000),
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

/** stderr's non-empty lines. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}
