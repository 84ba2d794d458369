/** The progress display of `fora sample`: a line per batch event, the step bar in between. */
import assert from "node:assert/strict";
import { progressSink } from "../../lib/events/progress.ts";
import type { BatchEvent } from "../../lib/events/types.ts";

function capture() {
  let text = "";
  const dec = new TextDecoder();
  return {
    out: { writeSync: (p: Uint8Array) => ((text += dec.decode(p)), p.length) },
    text: () => text,
  };
}

const base = { run_id: "r", time_ms: 1, path: "s/samples-000004-000007.npz", first: 4, count: 4, reason: null, done: 8, total: 10 };

Deno.test("sample's progress lines: saved, kept from an earlier run, and resampling with the reason", () => {
  const c = capture();
  const sink = progressSink({ out: c.out, redraw: false });
  sink.emit({ ...base, event: "batch", status: "verified" } satisfies BatchEvent);
  sink.emit({ ...base, event: "batch", status: "invalid", reason: "s/samples-000004-000007.npz does not match its recorded sha256" });
  sink.emit({ ...base, event: "batch", status: "written" });
  sink.close();
  assert.deepEqual(c.text().trim().split("\n"), [
    "kept s/samples-000004-000007.npz from an earlier run (images 4..7, checked; 8/10 done)",
    "resampling images 4..7: s/samples-000004-000007.npz does not match its recorded sha256",
    "saved s/samples-000004-000007.npz (images 4..7; 8/10 done)",
  ]);
});
