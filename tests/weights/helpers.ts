/** Shared fixtures for the weights tests: temp folders, hand-built files, error checks. */
import assert from "node:assert/strict";
import { ForaError } from "../../lib/errors.ts";

export async function withTempDir(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fora-weights-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Writes a safetensors file byte by byte, bypassing writeSafetensors, so tests can
 * produce dtypes it does not write (BF16, I32) and every kind of corruption.
 */
export async function writeRawSafetensors(
  path: string,
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  options: { headerBytes?: Uint8Array; declaredLength?: bigint } = {},
): Promise<void> {
  const headerBytes = options.headerBytes ??
    new TextEncoder().encode(JSON.stringify(header));
  const prefix = new Uint8Array(8);
  const declared = options.declaredLength ?? BigInt(headerBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, declared, true);
  await Deno.writeFile(path, concat(prefix, headerBytes, data));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Asserts a one-line "weights" ForaError whose message contains every fragment. */
export async function assertWeightsError(
  action: () => unknown,
  ...fragments: string[]
): Promise<void> {
  await assert.rejects(async () => await action(), (e: unknown) => {
    assert.ok(e instanceof ForaError, `expected ForaError, got ${e}`);
    assert.equal(e.code, "weights");
    assert.ok(
      !e.message.includes("\n"),
      `message is not one line: ${e.message}`,
    );
    for (const f of fragments) {
      assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
    }
    return true;
  });
}
