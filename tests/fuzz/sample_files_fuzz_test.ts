/**
 * Fuzz targets: the files `fora merge` and a resumed `fora sample` read back from shard
 * folders, which may have been damaged, truncated by a full disk, or edited.
 *
 *   - the .npz reader (lib/sample/npz.ts): random bytes, byte-level mutations of valid plain
 *     and ZIP64 archives. An accepted archive's arrays hold exactly their shapes' bytes.
 *   - the shard folder's run file and journal (lib/sample/folder.ts): a valid run file with
 *     values replaced or keys deleted, arbitrary JSON, and journals of mutated record lines.
 *     The run file is accepted or refused with a one-line error; a journal never throws and
 *     keeps only records of the run's own batches, with the classes the run's settings give.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { arrayBytes, npzWriter, readNpz } from "../../lib/sample/npz.ts";
import { checkRunRecord, parseJournal, type RunRecord } from "../../lib/sample/folder.ts";
import { batchRange, classesOf, shardBatches } from "../../lib/sample/plan.ts";
import { attempt, fuzz, mutated, mutatedJson, nastyNumber, scratchFile, show } from "./fuzz.ts";

const scratch = await scratchFile("x.npz");

async function npzBytes(forceZip64: boolean): Promise<Uint8Array> {
  const file = await Deno.open(scratch.path, { write: true, create: true, truncate: true });
  try {
    const w = npzWriter(file, { forceZip64 });
    await w.begin("arr_0", "|u1", [2, 2, 2, 3]);
    await w.write(Uint8Array.from({ length: 24 }, (_, i) => i));
    await w.begin("arr_1", "<i8", [2]);
    await w.write(new Uint8Array(new BigInt64Array([3n, 9n]).buffer));
    await w.finish();
  } finally {
    file.close();
  }
  return await Deno.readFile(scratch.path);
}
const plain = await npzBytes(false);
const zip64 = await npzBytes(true);
await scratch.cleanup();

Deno.test("fuzz: the .npz reader returns arrays of exactly their shapes' bytes or a typed one-line error", async () => {
  const cases = fc.oneof(
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
    { arbitrary: mutated(plain), weight: 3 },
    { arbitrary: mutated(zip64), weight: 3 },
  );
  await fuzz(cases, async (bytes) => {
    const r = await attempt(() => readNpz(bytes, "x.npz"), ["io"], () => show(bytes));
    if (!r.ok) return "rejected";
    const arrays = r.value;
    for (const [name, a] of arrays) {
      assert.ok(a.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${name}: shape ${a.shape}`);
      assert.equal(a.bytes.length, arrayBytes(a.dtype, a.shape), name);
    }
    return "accepted";
  });
});

const validRun: RunRecord = {
  format: "fora-samples",
  formatVersion: 1,
  settings: {
    foraVersion: "0.1.0",
    model: { fingerprint: "a".repeat(64), architecture: "dit", numClasses: 10 },
    sampler: "ddpm",
    steps: 6,
    cfg: 4,
    cfgChannels: "ref",
    cacheInterval: 3,
    plan: { policy: "static", kinds: "FRFRRF" },
    precision: "fp32",
    device: "cpu",
    seed: 5,
    num: 23,
    batch: 4,
    classes: "uniform",
  },
  shard: { index: 1, count: 2 },
  png: false,
};

Deno.test("fuzz: a shard folder's run file is accepted whole or refused with a typed one-line error", async () => {
  const cases = fc.oneof(
    { arbitrary: mutatedJson(validRun), weight: 5 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 },
  );
  await fuzz(cases, async (json) => {
    const r = await attempt(() => checkRunRecord(json, "fora-sample.json"), ["io"], () => JSON.stringify(json));
    if (!r.ok) return "rejected";
    const { settings, shard } = r.value;
    assert.ok(shard.index >= 0 && shard.index < shard.count);
    assert.ok(Number.isSafeInteger(settings.num) && settings.num >= 1 && Number.isSafeInteger(settings.batch) && settings.batch >= 1);
    assert.equal(settings.plan.kinds.length, settings.steps);
    assert.ok(settings.classes === "uniform" || settings.classes.every((c) => c < settings.model.numClasses));
    // What a run does with an accepted record must not throw.
    const { start, end } = shardBatches(settings.num, settings.batch, shard);
    if (end > start) classesOf(settings.classes, settings.model.numClasses, settings.seed, batchRange(settings.num, settings.batch, start));
    return "accepted";
  });
});

/** Valid records of validRun's shard 1/2 (batches 3..5: images 12..22). */
const validLines = [3, 4, 5].map((j) => {
  const r = batchRange(23, 4, j);
  return {
    first: r.first,
    count: r.count,
    npz: { bytes: 1000, sha256: "b".repeat(64) },
    shape: [r.count, 16, 16, 3],
    classes: classesOf("uniform", 10, 5, r),
    images: Array(r.count).fill("c".repeat(64)),
    png: null,
  };
});

Deno.test("fuzz: a shard's journal never throws and keeps only valid records of the run's own batches", async () => {
  const line = fc.oneof(
    { arbitrary: fc.constantFrom(...validLines).map((l) => JSON.stringify(l)), weight: 3 },
    { arbitrary: fc.constantFrom(...validLines).chain((l) => mutatedJson(l)).map((l) => JSON.stringify(l)), weight: 4 },
    { arbitrary: fc.oneof(fc.string({ maxLength: 40 }), nastyNumber.map(String)), weight: 1 },
    { arbitrary: fc.constantFrom(...validLines).chain((l) => fc.nat().map((n) => JSON.stringify(l).slice(0, n % 200))), weight: 1 },
  );
  const journals = fc.array(line, { maxLength: 6 }).map((lines) => lines.join("\n"));
  await fuzz(journals, (text) => {
    const { records, dropped } = parseJournal(text, validRun);
    const { start, end } = shardBatches(23, 4, validRun.shard);
    const lines = text.split("\n").filter((l) => l.trim() !== "").length;
    assert.equal(records.size + dropped, lines);
    for (const [j, rec] of records) {
      assert.ok(j >= start && j < end, `batch ${j} belongs to the shard`);
      const want = batchRange(23, 4, j);
      assert.deepEqual([rec.first, rec.count], [want.first, want.count]);
      assert.deepEqual(rec.classes, classesOf("uniform", 10, 5, want));
      assert.equal(rec.images.length, rec.count);
      assert.equal(rec.shape[0], rec.count);
    }
    return records.size > 0 ? "accepted" : "rejected";
  });
});
