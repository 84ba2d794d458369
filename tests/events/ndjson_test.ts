import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ForaError } from "../../lib/errors.ts";
import { ndjsonSink } from "../../lib/events/ndjson.ts";
import { isOutputClosed, OutputClosed, type SyncWriter } from "../../lib/events/output.ts";
import { collectRun, EXAMPLES, simulateRun } from "./examples.ts";

/** A writer that keeps what it is given, `chunk` bytes per call at most. */
function memoryWriter(
  chunk = Infinity,
): SyncWriter & { text(): string; calls: number } {
  const parts: Uint8Array[] = [];
  const w = {
    calls: 0,
    writeSync(p: Uint8Array) {
      w.calls++;
      const n = Math.min(p.length, chunk);
      parts.push(p.slice(0, n));
      return n;
    },
    text: () => new TextDecoder().decode(new Uint8Array(parts.flatMap((p) => [...p]))),
  };
  return w;
}

Deno.test("NDJSON writes each event as one JSON line that parses back to the same event", () => {
  const out = memoryWriter();
  const sink = ndjsonSink(out);
  assert.equal(sink.kind, "ndjson");
  simulateRun(sink.emit, { steps: 6 });
  const lines = out.text().split("\n");
  assert.equal(lines.pop(), "", "ends with a newline");
  assert.deepEqual(lines.map((l) => JSON.parse(l)), collectRun({ steps: 6 }));
});

Deno.test("NDJSON survives partial writes", () => {
  const out = memoryWriter(7);
  ndjsonSink(out).emit(EXAMPLES.image);
  assert.deepEqual(JSON.parse(out.text()), EXAMPLES.image);
  assert.ok(out.calls > 10);
});

Deno.test("a closed reader (EPIPE) turns into OutputClosed, on that emit and every later one", () => {
  let calls = 0;
  const sink = ndjsonSink({
    writeSync() {
      calls++;
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    },
  });
  assert.throws(
    () => sink.emit(EXAMPLES.step),
    (e) => isOutputClosed(e) && e instanceof OutputClosed,
  );
  assert.throws(() => sink.emit(EXAMPLES.run_end), OutputClosed);
  assert.equal(calls, 1, "no write after the stream closed");

  const nodeStyle = ndjsonSink({
    writeSync() {
      throw Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
    },
  });
  assert.throws(() => nodeStyle.emit(EXAMPLES.step), OutputClosed);
});

Deno.test("any other write failure is a ForaError, not OutputClosed", () => {
  const sink = ndjsonSink({
    writeSync() {
      throw new Error("No space left on device (os error 28)");
    },
  });
  assert.throws(
    () => sink.emit(EXAMPLES.step),
    (e) =>
      e instanceof ForaError && e.code === "io" &&
      /standard output: No space left/.test(e.message),
  );
});

Deno.test("`... --json | head -1` ends the writer with status 0 and nothing on stderr", async () => {
  const script = fileURLToPath(
    new URL("./fixtures/emit_many.ts", import.meta.url),
  );
  const deno = Deno.execPath();
  const command = new Deno.Command("bash", {
    args: [
      "-c",
      'set -o pipefail; "$0" run --quiet --no-lock "$1" | head -1',
      deno,
      script,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const { code, stdout, stderr } = await command.output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(err, "", "stderr must be empty");
  assert.equal(code, 0, "pipeline status (the writer's, with pipefail)");
  const out = new TextDecoder().decode(stdout);
  assert.equal(out.split("\n").length, 2, "exactly one line");
  assert.equal(JSON.parse(out).event, "run_start");
});
