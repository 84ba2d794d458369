/** Helpers for the io tests: temp folders and ForaError checks. */
import assert from "node:assert/strict";
import { ForaError } from "../../lib/errors.ts";

export async function withTempDir(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fora-io-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that `promise` rejects with ForaError("io") whose message names `path` and matches `pattern`. */
export async function assertIoError(
  promise: Promise<unknown>,
  path: string,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ForaError, `expected a ForaError, got ${e}`);
    assert.equal(e.code, "io");
    assert.ok(
      e.message.startsWith(`${path}: `),
      `message names the file: ${e.message}`,
    );
    assert.match(e.message, pattern);
    return true;
  });
}

export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Root ignores file modes, so "unwritable folder" tests cannot fail for root. */
export const IS_ROOT = Deno.uid() === 0;
