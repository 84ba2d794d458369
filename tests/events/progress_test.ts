import assert from "node:assert/strict";
import { initialProgress, progressLine, progressSink, summaryLine, updateProgress } from "../../lib/events/progress.ts";
import { chooseSink } from "../../lib/events/sink.ts";
import type { SyncWriter } from "../../lib/events/output.ts";
import { EXAMPLES, simulateRun } from "./examples.ts";

function textWriter(): SyncWriter & { text: string } {
  const decoder = new TextDecoder();
  const w = {
    text: "",
    writeSync(p: Uint8Array) {
      w.text += decoder.decode(p);
      return p.length;
    },
  };
  return w;
}

Deno.test("the progress display redraws one line with \\r and ends with a newline and a summary", () => {
  const err = textWriter();
  const sink = progressSink({ out: err, redraw: true, barWidth: 10 });
  assert.equal(sink.kind, "progress");
  simulateRun(sink.emit, { steps: 10, blocks: 4, images: 1 });
  sink.close();
  const out = err.text;
  assert.ok(out.endsWith("\n"));
  const lines = out.split("\n").slice(0, -1);
  // The bar's line (redraws separated by \r), the saved line, the final bar, the summary.
  const redraws = out.split("\r").length - 1;
  assert.ok(redraws >= 11, `one redraw per step and more: ${redraws}`);
  assert.match(
    lines.find((l) => l.includes("saved"))!,
    /saved out\/000000\.png/,
  );
  const finalBar = lines.at(-2)!.split("\r").at(-1)!;
  assert.equal(
    finalBar,
    "[##########]  10/10  full   45.5 steps/s  ETA 0:00  cache 60% hits",
  );
  // 10 steps at interval 3: full at k = 0, 3, 6, 9 (40 ms), reuse 10 ms: 10·40 / (4·40 + 6·10) = 1.82.
  assert.match(
    lines.at(-1)!,
    /^done: 10 steps \(4 full, 6 reuse\) in 0\.2 s, 45\.5 steps\/s, estimated speed-up 1\.82x, cache hits 60%$/,
  );
});

Deno.test("ETA weighs the steps left in the plan by the mean time of their kind", () => {
  const s = initialProgress();
  updateProgress(s, {
    ...EXAMPLES.run_start,
    plan: {
      ...EXAMPLES.run_start.plan,
      steps: 5,
      kind: ["full", "reuse", "reuse", "reuse", "full"],
      full: [0, 4],
    },
  });
  updateProgress(s, { ...EXAMPLES.step, k: 0, kind: "full", ms: 30_000 });
  updateProgress(s, { ...EXAMPLES.step, k: 1, kind: "reuse", ms: 1_000 });
  // Left: k = 2, 3 reuse (1 s each), k = 4 full (30 s): 32 s.
  assert.equal(
    progressLine(s, 5),
    "[##...]  2/5  reuse  0.06 steps/s  ETA 0:32",
  );
  updateProgress(s, { ...EXAMPLES.cache, attn: "HHHM", mlp: "HHMM" });
  assert.match(progressLine(s, 5), /cache 63% hits$/);
});

Deno.test("before any step there is no rate and no ETA yet", () => {
  const s = initialProgress();
  updateProgress(s, EXAMPLES.run_start);
  assert.equal(progressLine(s, 4), "[....]  0/4  ETA -:--");
});

Deno.test("summaries say how the run ended", () => {
  const s = initialProgress();
  const totals = { ...EXAMPLES.run_end.totals, speedup_estimate: null };
  const ok = summaryLine({
    ...EXAMPLES.run_end,
    status: "ok",
    error: undefined,
    totals,
  }, s);
  assert.equal(ok, "done: 4 steps (2 full, 2 reuse) in 2.6 s, 2.22 steps/s");
  assert.match(
    summaryLine(EXAMPLES.run_end, s),
    /^stopped by an error after 4 steps/,
  );
  assert.match(
    summaryLine({
      ...EXAMPLES.run_end,
      status: "interrupted",
      error: undefined,
      totals,
    }, s),
    /^interrupted after 4 steps/,
  );
});

Deno.test("without a terminal on stderr the display prints only whole lines", () => {
  const err = textWriter();
  const sink = progressSink({ out: err, redraw: false });
  simulateRun(sink.emit, { steps: 6, images: 2 });
  assert.ok(!err.text.includes("\r"));
  assert.deepEqual(err.text.split("\n").map((l) => l.split(" ")[0]), [
    "saved",
    "saved",
    "done:",
    "",
  ]);
});

Deno.test("close() ends a bar that no run_end finished, so an error message starts on its own line", () => {
  const err = textWriter();
  const sink = progressSink({ out: err });
  sink.emit(EXAMPLES.run_start);
  sink.emit(EXAMPLES.step);
  assert.ok(!err.text.endsWith("\n"));
  sink.close();
  sink.close();
  // One step of 810.25 ms done, three left at that mean: ETA 2.43 s, shown as 0:03.
  assert.ok(
    err.text.endsWith("1/4  full   1.23 steps/s  ETA 0:03\n"),
    err.text,
  );
  assert.equal(err.text.split("\n").length, 2, "exactly one newline");
});

Deno.test("a failing stderr silences the display and never stops the run", () => {
  let calls = 0;
  const sink = progressSink({
    out: {
      writeSync() {
        calls++;
        throw new Deno.errors.BrokenPipe("Broken pipe");
      },
    },
  });
  simulateRun(sink.emit, { steps: 5 });
  sink.close();
  assert.equal(calls, 1);
});

Deno.test("chooseSink: NDJSON on stdout with --json or a piped stdout, else progress on stderr; never both", () => {
  const cases = [
    { json: true, stdoutIsTerminal: true, want: "ndjson" },
    { json: true, stdoutIsTerminal: false, want: "ndjson" },
    { json: false, stdoutIsTerminal: false, want: "ndjson" },
    { json: false, stdoutIsTerminal: true, want: "progress" },
  ];
  for (const { want, ...choice } of cases) {
    const stdout = textWriter(), stderr = textWriter();
    const sink = chooseSink({ ...choice, stdout, stderr });
    assert.equal(sink.kind, want, JSON.stringify(choice));
    simulateRun(sink.emit, { steps: 4 });
    sink.close();
    if (want === "ndjson") {
      assert.equal(stderr.text, "");
      assert.equal(stdout.text.trim().split("\n").length, 4 * 2 + 3);
    } else {
      assert.equal(stdout.text, "");
      assert.match(stderr.text, /done: 4 steps/);
    }
  }
});
