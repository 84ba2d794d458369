/**
 * `fora similarity` end to end: the real CLI in a subprocess on the random-weight fixture
 * bundles, and the round trip of a suggested schedule through `fora generate --schedule`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readNpy } from "../../lib/io/npy.ts";
import { readPng } from "../../lib/io/png.ts";
import { readScheduleFile } from "../../lib/fora/schedule_file.ts";
import { sketchStandardError } from "../../lib/similarity/gram.ts";
import type { SimilaritySummary } from "../../lib/similarity/write.ts";
import type { CacheEvent, ForaEvent, RunStartEvent, StepEvent } from "../../lib/events/types.ts";
import { runFora } from "../cli/run.ts";
import { distinctPixels, freshDir, ndjson, pixelBundle, tinyBundle } from "./helpers.ts";

const S = 10;

async function summaryOf(dir: string): Promise<SimilaritySummary> {
  return JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
}

Deno.test("similarity writes a matrix, a heatmap per block and branch, the summary plot and one HTML report", async () => {
  const out = await freshDir("sim");
  const r = await runFora("similarity", "-m", await tinyBundle(), "--steps", String(S), "-o", out, "--class", "3", "--json");
  assert.equal(r.code, 0, r.stderr);
  const rows = ndjson<{ kind: string; layer?: number; branch?: string }>(r.stdout);
  assert.deepEqual(rows.filter((x) => x.kind === "track").map((x) => `${x.layer}.${x.branch}`), ["0.attn", "0.mlp", "1.attn", "1.mlp"]);
  assert.equal(rows.at(-1)!.kind, "summary");
  const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
  assert.deepEqual(names, [
    "block0-attn.npy",
    "block0-attn.png",
    "block0-mlp.npy",
    "block0-mlp.png",
    "block1-attn.npy",
    "block1-attn.png",
    "block1-mlp.npy",
    "block1-mlp.png",
    "consecutive.png",
    "report.html",
    "summary.json",
  ]);
  for (const t of ["block0-attn", "block1-mlp"]) {
    const m = await readNpy(join(out, `${t}.npy`));
    assert.deepEqual(m.shape, [S, S]);
    for (let i = 0; i < S; i++) {
      assert.equal(m.data[i * S + i], 1, "each step is identical to itself");
      for (let j = 0; j < S; j++) {
        assert.equal(m.data[i * S + j], m.data[j * S + i]);
        assert.ok(m.data[i * S + j] >= -1 && m.data[i * S + j] <= 1);
      }
    }
    const png = await readPng(join(out, `${t}.png`));
    assert.deepEqual([png.width, png.height], [580, 520]);
    assert.ok(distinctPixels(png.data, png.channels) > 100, "the heatmap is not uniform");
  }
  const summary = await summaryOf(out);
  assert.equal(summary.mode, "exact");
  assert.equal(summary.steps, S);
  assert.equal(summary.model_times[0], 999);
  const html = await Deno.readTextFile(join(out, "report.html"));
  assert.equal(html.match(/<img /g)?.length, 4 + 1 + 1, "4 heatmaps, the summary plot, the sample");
  assert.ok(!/(src|href)="(https?:|\/\/|file:)/.test(html), "self-contained: no external resource");
});

Deno.test("over --max-memory the features are sketched, and the sketched matrices agree with the exact ones within the stated error", async () => {
  const bundle = await tinyBundle();
  const exactDir = await freshDir("exact"), sketchDir = await freshDir("sketch");
  const common = ["-m", bundle, "--steps", String(S), "--sketch-dim", "512"];
  const e = await runFora("similarity", ...common, "-o", exactDir);
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /exact/);
  // Exact needs 4 tracks x 10 steps x 2048 values x 4 bytes = 320 KiB, the sketch 4 x 10 x 512 x 8 = 160 KiB
  // (+ 8 KiB of hash table), both + 64 KiB for one step's graph inputs and outputs.
  const s = await runFora("similarity", ...common, "-o", sketchDir, "--max-memory", "350K");
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /sketched to 512 dimensions/);
  const summary = await summaryOf(sketchDir);
  assert.equal(summary.mode, "sketch");
  assert.equal(summary.sketch_dim, 512);
  assert.ok(summary.sketch_standard_error!.at_0_95 > 0);
  for (const t of ["block0-attn", "block0-mlp", "block1-attn", "block1-mlp"]) {
    const a = (await readNpy(join(exactDir, `${t}.npy`))).data, b = (await readNpy(join(sketchDir, `${t}.npy`))).data;
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i] - b[i]) <= 5 * sketchStandardError(a[i], 512) + 1e-6, `${t}[${i}]: exact ${a[i]}, sketch ${b[i]}`);
    }
  }
  const tiny = await runFora("similarity", ...common, "-o", await freshDir("x"), "--max-memory", "64K");
  assert.equal(tiny.code, 2);
  assert.match(tiny.stderr, /too small even for the 512-dimension sketch/);
});

Deno.test("--layers and --branches choose what is recorded; a pixel-space model without guidance works too", async () => {
  const out = await freshDir("layers");
  const r = await runFora(
    "similarity",
    "-m",
    await pixelBundle(),
    "--steps",
    "6",
    "--cfg",
    "1",
    "--layers",
    "1-2",
    "--branches",
    "mlp",
    "-o",
    out,
  );
  assert.equal(r.code, 0, r.stderr);
  const names = [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => n.startsWith("block")).sort();
  assert.deepEqual(names, ["block1-mlp.npy", "block1-mlp.png", "block2-mlp.npy", "block2-mlp.png"]);
  const bad = await runFora("similarity", "-m", await pixelBundle(), "--steps", "4", "--layers", "3", "-o", out);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--layers: block 3 does not exist; this model has blocks 0..2/);
  for (const args of [["--layers", "2-1"], ["--branches", "ffn"], ["--threshold", "2"], ["--max-memory", "lots"]]) {
    const u = await runFora("similarity", "-m", await pixelBundle(), "--steps", "4", "-o", out, ...args);
    assert.equal(u.code, 2, `${args.join(" ")}: ${u.stderr}`);
  }
});

Deno.test("a suggested schedule round-trips through fora generate --schedule, which runs exactly that plan", async () => {
  const bundle = await tinyBundle();
  const dir = await freshDir("roundtrip");
  const sched = join(dir, "schedule.json");
  const r = await runFora(
    "similarity",
    "-m",
    bundle,
    "--steps",
    "12",
    "-o",
    join(dir, "sim"),
    "--suggest-schedule",
    sched,
    "--threshold",
    "0.9",
  );
  assert.equal(r.code, 0, r.stderr);
  const file = await readScheduleFile(sched);
  assert.equal(file.steps, 12);
  assert.equal(file.kinds[0], "full");
  assert.ok(file.kinds.includes("reuse"), `some step reuses: ${file.kinds.join(",")}`);
  assert.equal(file.policy.params.threshold, 0.9);
  const g = await runFora("generate", "-m", bundle, "--schedule", sched, "-o", join(dir, "gen"), "--json");
  assert.equal(g.code, 0, g.stderr);
  const events = ndjson<ForaEvent>(g.stdout);
  const start = events[0] as RunStartEvent;
  assert.equal(start.plan.policy.name, "schedule");
  assert.equal(start.plan.policy.params.threshold, 0.9);
  assert.deepEqual(start.plan.kind, file.kinds);
  assert.equal(start.flags.schedule, sched);
  assert.equal(start.flags.steps, 12, "the steps come from the schedule");
  const steps = events.filter((e): e is StepEvent => e.event === "step");
  assert.deepEqual(steps.map((s) => s.kind), file.kinds);
  const caches = events.filter((e): e is CacheEvent => e.event === "cache");
  assert.deepEqual(caches.map((c) => c.attn[0] === "H"), file.kinds.map((k) => k === "reuse"));
  // The schedule replaces -N and fixes the step count.
  const both = await runFora("generate", "-m", bundle, "--schedule", sched, "-N", "2", "-o", join(dir, "gen"));
  assert.equal(both.code, 2);
  const steps5 = await runFora("generate", "-m", bundle, "--schedule", sched, "--steps", "5", "-o", join(dir, "gen"));
  assert.equal(steps5.code, 2);
  assert.match(steps5.stderr, /--steps 5 does not match --schedule/);
  // fora profile accepts the schedule too.
  const p = await runFora("profile", "-m", bundle, "--schedule", sched, "--json");
  assert.equal(p.code, 0, p.stderr);
  const full = file.kinds.filter((k) => k === "full").length;
  const rows = ndjson<{ kind: string; part: string; runs: number }>(p.stdout);
  assert.equal(rows.find((x) => x.kind === "full" && x.part === "total")!.runs, full - 1, "every full step but the warm-up");
});
