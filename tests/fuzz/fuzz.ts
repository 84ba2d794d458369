/**
 * Property-based fuzzing with fast-check, shared by the targets in this folder. Each target
 * runs RUNS cases (10,000 unless FORA_FUZZ_RUNS says otherwise) from a fresh random seed (a fixed one under CI)
 * (or FORA_FUZZ_SEED, to replay one: fast-check prints the seed and the shrunk case of a
 * failure), counts the cases it really ran, and checks the one rule every reader of
 * untrusted input follows: it returns a well-formed value, or throws a ForaError whose
 * message is one non-empty printable line (no control characters copied from the input); anything else (a TypeError, a RangeError from an
 * allocation, a hang) fails the target.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { isForaError } from "../../lib/errors.ts";

export const RUNS = Number(Deno.env.get("FORA_FUZZ_RUNS") ?? 10_000);
// CI replays one fixed seed, so that a submission's result does not depend on the draw;
// elsewhere every run explores fresh cases.
const SEED = Deno.env.get("FORA_FUZZ_SEED") ?? (Deno.env.get("CI") ? "20261126" : undefined);

/** fast-check's parameters for one target: a seed printed first, so that even a hang can be replayed. */
export function params(): fc.Parameters<unknown> {
  const seed = SEED ? Number(SEED) : (Math.random() * 2 ** 31) | 0;
  console.log(`  seed ${seed} (replay: FORA_FUZZ_SEED=${seed})`);
  return { numRuns: RUNS, seed };
}

/** Asserts `e` is the typed, user-facing error a reader may throw, of one of `codes`. */
export function assertTypedError(e: unknown, codes: string[], input: () => string): void {
  if (!isForaError(e)) {
    assert.fail(`not a ForaError: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}\ninput: ${input()}`);
  }
  assert.ok(codes.includes(e.code), `error code ${e.code}, expected one of ${codes}: ${e.message}`);
  assert.ok(e.message.length > 0, "an empty message");
  // One printable line: no newline, no escape sequence or other control character from the input.
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(e.message, /[\u0000-\u001f]/, `not one printable line: ${JSON.stringify(e.message)}`);
  assert.doesNotMatch(e.message, /\[object Object\]/, `a broken message: ${e.message}`);
}

/**
 * Runs `property` RUNS times over `arb` and checks that it really did. The property returns
 * "accepted" when the reader returned a value (then checked) and "rejected" when it threw
 * (a checked ForaError); both counts are printed, so a target that never gets past the
 * first check shows.
 */
export async function fuzz<T>(
  arb: fc.Arbitrary<T>,
  property: (value: T) => Promise<"accepted" | "rejected"> | "accepted" | "rejected",
): Promise<{ cases: number; accepted: number }> {
  let cases = 0, accepted = 0;
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      cases++;
      if (await property(value) === "accepted") accepted++;
    }),
    params(),
  );
  assert.ok(cases >= RUNS, `${cases} cases run, ${RUNS} wanted`);
  console.log(`  ${cases} cases: ${accepted} accepted, ${cases - accepted} refused`);
  return { cases, accepted };
}

/** Calls `read`; "rejected" after checking a thrown error with assertTypedError, else the value. */
export async function attempt<T>(
  read: () => Promise<T> | T,
  codes: string[],
  input: () => string,
): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    return { ok: true, value: await read() };
  } catch (e) {
    assertTypedError(e, codes, input);
    return { ok: false };
  }
}

// ---- arbitraries ---------------------------------------------------------------------------

/** A byte array with byte-level edits applied: flips, overwrites, truncation, extension, splices. */
export function mutated(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
    fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.record({ kind: fc.constant("u64" as const), at: fc.nat(), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => {
    let b = base.slice();
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.kind === "append" ? 0 : (e as { at: number }).at % (b.length + 1);
      switch (e.kind) {
        case "set":
          if (at < b.length) b[at] = e.value;
          break;
        case "flip":
          if (at < b.length) b[at] ^= 1 << e.bit;
          break;
        case "truncate":
          b = b.slice(0, at);
          break;
        case "append": {
          const c = new Uint8Array(b.length + e.bytes.length);
          c.set(b);
          c.set(e.bytes, b.length);
          b = c;
          break;
        }
        case "splice": {
          const c = new Uint8Array(b.length + e.bytes.length);
          c.set(b.subarray(0, at));
          c.set(e.bytes, at);
          c.set(b.subarray(at), at + e.bytes.length);
          b = c;
          break;
        }
        case "u64":
          if (at + 8 <= b.length) new DataView(b.buffer).setBigUint64(at, e.value, true);
          break;
      }
    }
    return b;
  });
}

/** Numbers that break naive size arithmetic. */
export const nastyNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -3, max: 70 }),
  fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 2, 1e300, -0, 0.5, 1.5, Number.MAX_SAFE_INTEGER),
  fc.double(),
  fc.constantFrom("1", "", null, true, [], {}, "NaN"),
);

/** Path strings that try to leave a folder, or are otherwise not plain relative paths. */
export const hostilePath: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "../escape.onnx",
    "/etc/passwd",
    "weights/../../x",
    "a/./b",
    "a//b",
    "",
    ".",
    "..",
    "C:\\x",
    "c:/x",
    "a\\..\\b",
    "weights/\0x",
    "~/x",
    "weights/dit/model.safetensors/",
    "\u2025/x",
    "%2e%2e/x",
  ),
  fc.string({ maxLength: 20 }),
  fc.array(fc.constantFrom("..", ".", "a", "", "weights", "/", "\\"), { maxLength: 5 }).map((p) => p.join("/")),
);

/**
 * `base` (a JSON object) with 1 to 3 edits at random places of its tree: a value replaced
 * (by any JSON, a nasty number or a hostile path), or a key deleted.
 */
export function mutatedJson(base: unknown): fc.Arbitrary<unknown> {
  const replacement = fc.oneof(fc.jsonValue({ maxDepth: 2 }), nastyNumber, hostilePath);
  const edit = fc.record({ pick: fc.nat(), remove: fc.boolean(), value: replacement });
  return fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => {
    const copy = structuredClone(base);
    for (const e of edits) {
      const slots: [Record<string, unknown> | unknown[], string | number][] = [];
      const walk = (v: unknown) => {
        if (Array.isArray(v)) v.forEach((x, i) => (slots.push([v, i]), walk(x)));
        else if (v && typeof v === "object") {
          for (const [k, x] of Object.entries(v)) (slots.push([v as Record<string, unknown>, k]), walk(x));
        }
      };
      walk(copy);
      if (slots.length === 0) continue;
      const [parent, key] = slots[e.pick % slots.length];
      if (e.remove && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
      else (parent as Record<string, unknown>)[key as string] = e.value;
    }
    return copy;
  });
}

/**
 * A temp file rewritten for each case (cheaper than a new one per case), in memory (/dev/shm)
 * where there is one: rewriting a file on a disk-backed /tmp costs milliseconds, in memory
 * microseconds.
 */
export async function scratchFile(name: string): Promise<{ path: string; write(bytes: Uint8Array): void; cleanup(): Promise<void> }> {
  const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
  const dir = await Deno.makeTempDir({ prefix: "fora-fuzz-", ...(shm ? { dir: "/dev/shm" } : {}) }).catch(() =>
    Deno.makeTempDir({ prefix: "fora-fuzz-" })
  );
  const path = `${dir}/${name}`;
  return {
    path,
    write: (bytes) => Deno.writeFileSync(path, bytes),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Short text for failure messages. */
export function show(bytes: Uint8Array): string {
  const head = Array.from(bytes.subarray(0, 200), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${bytes.length} bytes: ${head}${bytes.length > 200 ? "..." : ""}`;
}
