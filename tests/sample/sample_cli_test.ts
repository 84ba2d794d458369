/**
 * `fora sample` and `fora merge` end to end: the real CLI in subprocesses on the tiny latent
 * DiT with its VAE (16x16 RGB images), a few steps per image so each run takes about a second.
 *
 * What they prove: shards merged equal an unsharded run byte for byte; a run killed with
 * SIGKILL and restarted completes with no gap and no duplicate; SIGINT / SIGTERM stop with
 * run_end "interrupted", exit 130 / 143 and no partial file; damaged batches are found and
 * sampled again; merge refuses sets that are not one complete, consistent run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../lib/events/schema.json" with { type: "json" };
import type { BatchEvent, ForaEvent, RunEndEvent } from "../../lib/events/types.ts";
import { readPng } from "../../lib/io/png.ts";
import { classOf } from "../../lib/sample/plan.ts";
import { JOURNAL_FILE, RUN_FILE } from "../../lib/sample/folder.ts";
import { LOCK_FILE } from "../../lib/sample/lock.ts";
import { copyTree, exists, listDir, PIXEL_ORIGINAL } from "../bundle/helpers.ts";
import { eventsOf, journalLines, npzArrays, runFora, spawnFora, tempFiles, tinyBundle, workDir } from "./helpers.ts";

const WORK = await workDir("fora-sample-test-");
const BUNDLE = await tinyBundle(WORK);
let dirs = 0;
const fresh = (name: string) => join(WORK, `${name}-${dirs++}`);

/** `fora sample` on the tiny bundle: 10 images in batches of 4, 6 DDPM steps. */
const run10 = (out: string, ...extra: string[]) =>
  runFora("sample", "-m", BUNDLE, "--num", "10", "--batch", "4", "--steps", "6", "--json", "-o", out, ...extra);

const batches = (events: ForaEvent[], status?: BatchEvent["status"]) =>
  events.filter((e): e is BatchEvent => e.event === "batch" && (status === undefined || e.status === status));

Deno.test("two shards merged equal one unsharded run byte for byte; events validate; PNGs and labels match arr_0 and arr_1", async () => {
  const whole = fresh("whole"), a = fresh("shard0"), b = fresh("shard1");
  const [u, s0, s1] = await Promise.all([run10(whole, "--png"), run10(a, "--shard", "0/2"), run10(b, "--shard", "1/2")]);
  for (const r of [u, s0, s1]) assert.equal(r.code, 0, r.stderr);

  // Batches are the unit of sharding: shard 0 of 2 has batch 0..3, shard 1 batches 4..7 and 8..9.
  assert.deepEqual(await listDir(a), [JOURNAL_FILE, RUN_FILE, "samples-000000-000003.npz"]);
  assert.deepEqual(await listDir(b), [JOURNAL_FILE, RUN_FILE, "samples-000004-000007.npz", "samples-000008-000009.npz"]);
  for (const [dir, name] of [[a, "samples-000000-000003.npz"], [b, "samples-000004-000007.npz"], [b, "samples-000008-000009.npz"]]) {
    assert.deepEqual(await Deno.readFile(join(dir, name)), await Deno.readFile(join(whole, name)), name);
  }

  const m1 = join(WORK, `m1-${dirs}.npz`), m2 = join(WORK, `m2-${dirs}.npz`);
  const r1 = await runFora("merge", whole, "--out", m1);
  const r2 = await runFora("merge", b, a, "--out", m2); // any order
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /merged 10 images from 2 shards into .*\(arr_0 uint8 \[10, 16, 16, 3\], arr_1 int64 labels \[10\]\)/);
  assert.deepEqual(await Deno.readFile(m2), await Deno.readFile(m1), "merged shards == unsharded, byte for byte");

  const { shape, pixels, labels } = await npzArrays(m1);
  assert.deepEqual(shape, [10, 16, 16, 3]);
  assert.deepEqual(labels, Array.from({ length: 10 }, (_, k) => classOf("uniform", 10, 0, k)), "classes drawn from (seed, index)");
  for (let k = 0; k < 10; k++) {
    const png = await readPng(join(whole, "png", `${String(k).padStart(6, "0")}.png`));
    assert.deepEqual(png.data, pixels.subarray(k * 768, (k + 1) * 768), `png ${k} == arr_0[${k}]`);
  }

  const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
  const events = eventsOf(u.stdout);
  for (const e of events) assert.ok(validate(e), JSON.stringify(validate.errors));
  assert.equal(events[0].event, "run_start");
  assert.deepEqual(batches(events).map((e) => [e.first, e.count, e.status, e.done, e.total]), [
    [0, 4, "written", 4, 10],
    [4, 4, "written", 8, 10],
    [8, 2, "written", 10, 10],
  ]);
  assert.equal((events.at(-1) as RunEndEvent).status, "ok");
  assert.equal(events.filter((e) => e.event === "step").length, 3 * 6);

  // Run again: everything is checked and kept, nothing sampled.
  const again = await run10(whole, "--png");
  assert.equal(again.code, 0, again.stderr);
  const ev = eventsOf(again.stdout);
  assert.deepEqual(batches(ev).map((e) => e.status), ["verified", "verified", "verified"]);
  assert.equal(ev.filter((e) => e.event === "step").length, 0);
  assert.equal((await journalLines(whole)).length, 3);
});

Deno.test("a shard killed with SIGKILL mid-run and restarted completes with no gaps and no duplicates, equal to an uninterrupted run", async () => {
  const args = ["--num", "24", "--batch", "4", "--steps", "150", "--shard", "1/2"];
  const killed = fresh("killed"), clean = fresh("clean");
  const live = spawnFora("sample", "-m", BUNDLE, ...args, "--json", "-o", killed);
  // Kill while the third batch is being sampled: two batches are recorded, one is half done.
  const reached = await live.until((e, all) => e.event === "step" && batches(all).length === 2);
  assert.ok(reached, "the run got to its third batch");
  live.child.kill("SIGKILL");
  const status = await live.finish();
  assert.equal(status.signal, "SIGKILL");
  assert.deepEqual((await journalLines(killed)).map((r) => r.first), [12, 16]);
  assert.equal(JSON.parse(await Deno.readTextFile(join(killed, LOCK_FILE))).pid, live.child.pid, "the dead run's lock file is left");

  const resumed = await runFora("sample", "-m", BUNDLE, ...args, "--json", "-o", killed);
  assert.equal(resumed.code, 0, resumed.stderr);
  const ev = batches(eventsOf(resumed.stdout));
  assert.deepEqual(
    ev.map((e) => [e.first, e.status]),
    [[12, "verified"], [16, "verified"], [20, "written"]],
    "only the missing batch is sampled",
  );
  const journal = await journalLines(killed);
  assert.deepEqual(journal.map((r) => r.first), [12, 16, 20], "one record per batch: no gap, no duplicate");
  assert.deepEqual(await listDir(killed), [
    JOURNAL_FILE,
    RUN_FILE,
    "samples-000012-000015.npz",
    "samples-000016-000019.npz",
    "samples-000020-000023.npz",
  ]);

  const straight = await runFora("sample", "-m", BUNDLE, ...args, "--json", "-o", clean);
  assert.equal(straight.code, 0, straight.stderr);
  for (const name of await listDir(clean)) {
    if (name.endsWith(".npz")) assert.deepEqual(await Deno.readFile(join(killed, name)), await Deno.readFile(join(clean, name)), name);
  }
});

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} during sample stops at a step boundary: run_end interrupted, exit ${code}, no partial file`, async () => {
    const out = fresh(`signal-${signal}`);
    const args = ["sample", "-m", BUNDLE, "--num", "6", "--batch", "2", "--steps", "1000", "--json", "-o", out];
    const live = spawnFora(...args);
    assert.ok(await live.until((e, all) => e.event === "step" && batches(all).length === 1 && e.k >= 1), "mid second batch");
    live.child.kill(signal);
    const { code: exit, stderr } = await live.finish();
    assert.equal(exit, code, stderr);
    const end = live.events.at(-1) as RunEndEvent;
    assert.equal(end.event, "run_end");
    assert.equal(end.status, "interrupted");
    assert.match(stderr, new RegExp(`interrupted by ${signal}`));
    assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/, "no stack trace");
    // The first batch was finished and recorded; nothing of the second is on disk.
    assert.deepEqual(await listDir(out), [JOURNAL_FILE, RUN_FILE, "samples-000000-000001.npz"]);
    assert.deepEqual(await tempFiles(out), []);
    assert.deepEqual((await journalLines(out)).map((r) => r.first), [0]);
  });
}

Deno.test("a restart finds a damaged batch, a stale temp file and a torn journal line: resamples the batch identically, removes the rest", async () => {
  const out = fresh("damaged");
  const first = await run10(out);
  assert.equal(first.code, 0, first.stderr);
  const name = join(out, "samples-000004-000007.npz");
  const original = await Deno.readFile(name);
  const damaged = original.slice();
  damaged[200] ^= 1;
  await Deno.writeFile(name, damaged);
  const stale = join(out, ".samples-000008-000009.npz.tmp-0123456789ab");
  await Deno.writeFile(stale, new Uint8Array(10));
  await Deno.writeTextFile(join(out, JOURNAL_FILE), '{"first":8,"count":2,"npz":{"by', { append: true });
  await Deno.writeTextFile(join(out, "notes.txt"), "mine");

  const again = await run10(out);
  assert.equal(again.code, 0, again.stderr);
  const ev = batches(eventsOf(again.stdout));
  assert.deepEqual(ev.map((e) => [e.first, e.status]), [[0, "verified"], [8, "verified"], [4, "invalid"], [4, "written"]]);
  assert.match(ev[2].reason!, /samples-000004-000007\.npz does not match its recorded sha256/);
  assert.deepEqual(await Deno.readFile(name), original, "resampled byte for byte");
  assert.equal(await exists(stale), false);
  assert.deepEqual((await journalLines(out)).map((r) => r.first), [0, 8, 4]);
  assert.equal(await Deno.readTextFile(join(out, "notes.txt")), "mine", "other files are left alone");

  // A last line cut just before its newline: kept, and terminated before anything is appended.
  const journal = join(out, JOURNAL_FILE);
  await Deno.writeTextFile(journal, (await Deno.readTextFile(journal)).trimEnd());
  const third = await run10(out);
  assert.equal(third.code, 0, third.stderr);
  assert.deepEqual(batches(eventsOf(third.stdout)).map((e) => e.status), ["verified", "verified", "verified"]);
  assert.ok((await Deno.readTextFile(journal)).endsWith("}\n"));
  assert.deepEqual((await journalLines(out)).map((r) => r.first), [0, 4, 8]);
});

Deno.test("a second sample run into a folder in use is refused with the first run's pid (exit 1), touching nothing of it", async () => {
  const out = fresh("two-writers");
  const args = ["sample", "-m", BUNDLE, "--num", "6", "--batch", "2", "--steps", "1000", "--json", "-o", out];
  const first = spawnFora(...args);
  assert.ok(await first.until((e, all) => e.event === "step" && batches(all).length === 1 && e.k >= 1), "mid second batch");
  // A temp file as an in-flight write leaves it: the second run must leave it alone.
  const inFlight = join(out, ".samples-000004-000005.npz.tmp-0123456789ab");
  await Deno.writeFile(inFlight, new Uint8Array(10));
  const second = await runFora(...args);
  assert.equal(second.code, 1, second.stderr);
  assert.equal(
    second.stderr,
    `error: --out ${out} is in use by another fora sample run (pid ${first.child.pid}); ` +
      "wait for it to end or stop it, or sample into another --out folder\n",
  );
  assert.equal(second.stdout, "", "no events: refused before run_start");
  assert.equal(await exists(inFlight), true, "the first run's temp file is still there");
  first.child.kill("SIGINT");
  const end = await first.finish();
  assert.equal(end.code, 130, end.stderr);
  assert.deepEqual((await journalLines(out)).map((r) => r.first), [0], "one record per batch");
  assert.deepEqual(await listDir(out), [inFlight.slice(out.length + 1), JOURNAL_FILE, RUN_FILE, "samples-000000-000001.npz"]);

  // The next run holds the folder alone: the temp file is a dead run's now, removed before run_start.
  const third = spawnFora(...args);
  assert.ok(await third.until((e) => e.event === "run_start"));
  assert.equal(await exists(inFlight), false);
  third.child.kill("SIGINT");
  assert.equal((await third.finish()).code, 130);
});

Deno.test("sample refuses a folder holding another run or shard (exit 2, naming the flag) and an unwritable --out (exit 1)", async () => {
  const out = fresh("other");
  assert.equal((await run10(out, "--shard", "0/2")).code, 0);
  const cases: [string[], RegExp][] = [
    [["--shard", "0/2", "--cfg", "1.5"], /holds a different sample run: --cfg is 4 in .* but 1\.5 in this command/],
    [["--shard", "0/2", "--seed", "3"], /--seed is 0 in .* but 3/],
    [["--shard", "1/2"], /holds shard 0\/2, not --shard 1\/2/],
    [["--shard", "0/2", "--png"], /was started without --png/],
  ];
  for (const [extra, message] of cases) {
    const r = await run10(out, ...extra);
    assert.equal(r.code, 2, `${extra.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const file = join(WORK, "a-file");
  await Deno.writeTextFile(file, "");
  const r = await run10(join(file, "sub"));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: --out .*a-file\/sub: cannot create the folder: .*; choose a writable folder\n$/);
  const bad = await runFora("sample", "-m", BUNDLE, "--num", "4", "--shard", "2/2");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shard.*index must be from 0 to 1/);
});

Deno.test("merge refuses a missing, repeated, incomplete, inconsistent or damaged shard set, and an existing --out, writing nothing", async () => {
  const a = fresh("m-a"), b = fresh("m-b"), c = fresh("m-c");
  const results = await Promise.all([run10(a, "--shard", "0/2"), run10(b, "--shard", "1/2"), run10(c, "--shard", "1/2", "--cfg", "2")]);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const out = join(WORK, `merged-${dirs++}.npz`);
  const expectFail = async (args: string[], code: number, message: RegExp) => {
    const r = await runFora("merge", ...args, "--out", out);
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
    assert.equal(await exists(out), false);
    assert.deepEqual(await tempFiles(WORK), []);
  };
  await expectFail([a], 1, /shards missing: 1\/2; pass every shard's folder/);
  await expectFail([a, a], 2, /shard 0\/2 is given twice/);
  await expectFail([a, c], 1, /not shards of one run: --cfg is 4 in .* but 2 in/);
  await expectFail([a, join(WORK, "nope")], 1, /nope: no such folder/);

  const journal = join(b, JOURNAL_FILE);
  const lines = await Deno.readTextFile(journal);
  await Deno.writeTextFile(journal, lines.split("\n")[0] + "\n");
  await expectFail(
    [a, b],
    1,
    /shard 1\/2 is incomplete: 1 of 2 batches not done \(the first from image 8\); run the same fora sample command again/,
  );
  await Deno.writeTextFile(journal, lines);

  const npz = join(b, "samples-000004-000007.npz");
  const bytes = await Deno.readFile(npz);
  const damaged = bytes.slice();
  damaged[300] ^= 4;
  await Deno.writeFile(npz, damaged);
  await expectFail(
    [a, b],
    1,
    /samples-000004-000007\.npz does not match its recorded sha256; run the same fora sample command in .* again/,
  );
  await Deno.writeFile(npz, bytes);

  assert.equal((await runFora("merge", a, b, "--out", out)).code, 0);
  const again = await runFora("merge", a, b, "--out", out);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists; pass --force to replace it/);
  assert.equal((await runFora("merge", a, b, "--out", out, "--force")).code, 0);
});

Deno.test("sample --class cycles the given classes; a pixel-space model's images are saved at its own size, gray", async () => {
  const src = join(WORK, "pixel-src");
  await copyTree(PIXEL_ORIGINAL, src);
  const cfg = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
  await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...cfg, space: "pixel" }));
  const bundle = join(WORK, "bundle-pixel");
  assert.equal((await runFora("convert", src, bundle, "--precision", "fp32", "-q")).code, 0);
  const out = fresh("pixel");
  const r = await runFora("sample", "-m", bundle, "--num", "5", "--batch", "5", "--steps", "4", "-c", "2", "-c", "0", "--json", "-o", out);
  assert.equal(r.code, 0, r.stderr);
  const { shape, labels } = await npzArrays(join(out, "samples-000000-000004.npz"));
  assert.deepEqual(shape, [5, 16, 16, 1]);
  assert.deepEqual(labels, [2, 0, 2, 0, 2]);
});
