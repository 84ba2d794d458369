/**
 * `fora profile` end to end: the real CLI in a subprocess on the tiny fixture bundle
 * (2 blocks, hidden 64, 16 tokens, classifier-free guidance: 2 x 16 tokens per step).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readPng } from "../../lib/io/png.ts";
import type { ProfileRow } from "../../lib/profile/report.ts";
import { f32, i64, openSession, withProfiling } from "../../lib/runtime/session.ts";
import { runFora } from "../cli/run.ts";
import { distinctPixels, freshDir, ndjson, tinyBundle } from "../similarity/helpers.ts";

const STEPS = "10";

Deno.test("at least 90% of all measured kernel time is attributed to named parts, in full steps, reuse steps and the decode", async () => {
  // --stat sum --include-warmup: every kernel the profiler measured, as measured.
  const r = await runFora(
    "profile",
    "-m",
    await tinyBundle(),
    "--steps",
    STEPS,
    "--json",
    "--stat",
    "sum",
    "--include-warmup",
    "--threads",
    "1",
  );
  assert.equal(r.code, 0, r.stderr);
  const rows = ndjson<ProfileRow>(r.stdout);
  for (const kind of ["full", "reuse", "decode"] as const) {
    const mine = rows.filter((x) => x.kind === kind);
    const total = mine.find((x) => x.part === "total")!;
    assert.ok(total.ms > 0, `${kind}: some kernel time`);
    const parts = mine.filter((x) => x.part !== "total");
    const named = parts.filter((x) => x.part !== "other").reduce((a, x) => a + x.ms, 0);
    assert.ok(named / total.ms >= 0.9, `${kind}: ${(100 * named / total.ms).toFixed(1)}% named`);
    const shares = parts.reduce((a, x) => a + x.share, 0);
    assert.ok(Math.abs(shares - 1) < 1e-3, `${kind}: shares add up to 1 (${shares})`);
    assert.equal(total.runs, kind === "full" ? 4 : kind === "reuse" ? 6 : 1, `${kind}: every run counted (10 steps, N = 3)`);
  }
  for (const x of rows) {
    for (const k of ["part", "block", "branch", "ms", "share", "flops"]) assert.ok(k in x, `${k} in ${JSON.stringify(x)}`);
  }
});

Deno.test("full steps are broken down per block into adaLN, norm, attention, residual and MLP, with analytic FLOPs", async () => {
  const r = await runFora("profile", "-m", await tinyBundle(), "--steps", STEPS, "--json");
  assert.equal(r.code, 0, r.stderr);
  const rows = ndjson<ProfileRow>(r.stdout).filter((x) => x.kind === "full" && x.part === "block");
  for (const block of [0, 1]) {
    const branches = rows.filter((x) => x.block === block).map((x) => x.branch).sort();
    assert.deepEqual(branches, ["adaln", "attn", "mlp", "norm", "residual"]);
  }
  // Closed forms for n = 2 rows (cond + uncond), T = 16 tokens, D = 64, 4 heads, MLP 4D; multiply-add = 2 FLOPs.
  const n = 2, T = 16, D = 64;
  const attn = 2 * n * T * D * D * 4 + 2 * 2 * n * T * T * D; // Q, K, V, out projections; QK^T and AV
  const mlp = 2 * n * T * D * 4 * D * 2; // fc1, fc2
  for (const block of [0, 1]) {
    const a = rows.find((x) => x.block === block && x.branch === "attn")!;
    const m = rows.find((x) => x.block === block && x.branch === "mlp")!;
    // The rest is elementwise work (biases, softmax, GELU): a few percent.
    assert.ok(a.flops_per_step >= attn && a.flops_per_step < attn * 1.05, `attn ${a.flops_per_step} vs ${attn}`);
    assert.ok(m.flops_per_step >= mlp && m.flops_per_step < mlp * 1.1, `mlp ${m.flops_per_step} vs ${mlp}`);
    assert.ok(a.gflops > 0 && a.bytes_per_step >= 4 * D * D * 4, "attention reads its four weight matrices");
  }
  const reuse = ndjson<ProfileRow>(r.stdout).filter((x) => x.kind === "reuse");
  assert.ok(!reuse.some((x) => x.part === "block"), "a reuse step runs no block");
  assert.ok(reuse.some((x) => x.part === "cache"));
});

Deno.test("the terminal table names every part; --chart draws a PNG; --trace-dir keeps ONNX Runtime's traces", async () => {
  const dir = await freshDir("profile");
  const chart = join(dir, "chart.png"), traces = join(dir, "traces");
  const r = await runFora("profile", "-m", await tinyBundle(), "--steps", STEPS, "--chart", chart, "--trace-dir", traces);
  assert.equal(r.code, 0, r.stderr);
  for (
    const s of [
      "full steps",
      "reuse steps",
      "VAE decode",
      "blocks: attn",
      "blocks: mlp",
      "blocks: adaln",
      "blocks: norm",
      "t_embedder",
      "final_layer",
      "GFLOP/s",
      "% of kernel time in named parts",
    ]
  ) {
    assert.ok(r.stdout.includes(s), `table shows "${s}":\n${r.stdout}`);
  }
  assert.match(r.stderr, /chart written to/);
  const png = await readPng(chart);
  assert.deepEqual([png.width, png.height], [980, 530]);
  assert.ok(distinctPixels(png.data, png.channels) > 20, "the chart is not blank");
  const kept = [...Deno.readDirSync(traces)].map((e) => e.name).sort();
  assert.equal(kept.length, 3, kept.join(", "));
  assert.ok(kept.every((n) => n.endsWith(".json")));
});

Deno.test("bad profile flags are usage errors", async () => {
  const bundle = await tinyBundle();
  const chart = await runFora("profile", "-m", bundle, "--steps", "4", "--chart", "chart.txt");
  assert.equal(chart.code, 2);
  assert.match(chart.stderr, /--chart chart.txt: give a file name ending in .png/);
  const stat = await runFora("profile", "-m", bundle, "--stat", "mean");
  assert.equal(stat.code, 2);
  const missing = await runFora("profile", "-m", join(bundle, "nope"), "--steps", "4");
  assert.equal(missing.code, 1, missing.stderr);
});

Deno.test("withProfiling traces every session opened inside it, and endProfiling returns the trace file", async () => {
  const dir = await freshDir("sessions");
  const path = join(await tinyBundle(), "dit-reuse-plain.fp32.onnx");
  const feeds = { latent: f32([1, 4, 8, 8]), timestep: f32([1], [999]), class_labels: i64([1], [3]), residual: f32([1, 16, 64]) };
  const { sessions } = await withProfiling(dir, async () => {
    const a = await openSession(path, { threads: 1 });
    await a.run(feeds);
    const trace = a.endProfiling();
    assert.ok(trace && trace.startsWith(dir) && trace.endsWith(".json"), String(trace));
    assert.equal(a.endProfiling(), trace, "ending twice returns the same file");
    await a.release();
    const b = await openSession(path, { threads: 1 });
    await b.run(feeds);
    await b.release(); // release ends profiling
  });
  assert.equal(sessions.length, 2);
  for (const s of sessions) {
    assert.equal(s.graph, path);
    const events = JSON.parse(await Deno.readTextFile(s.trace!));
    assert.ok(events.some((e: { name: string }) => e.name === "model_run"));
  }
  assert.notEqual(sessions[0].trace, sessions[1].trace);
  // Outside withProfiling, sessions do not profile.
  const c = await openSession(path, { threads: 1 });
  assert.equal(c.endProfiling(), undefined);
  await c.release();
});
