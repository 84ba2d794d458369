/**
 * The arithmetic of `fora sample` (lib/sample/plan.ts): shards are an exact partition of the
 * batches, classes follow from (seed, index) alone and are uniform.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { isForaError } from "../../lib/errors.ts";
import { batchCount, batchRange, classesOf, classOf, parseShard, shardBatches, shardImages } from "../../lib/sample/plan.ts";

Deno.test("the shards of a run cover every image exactly once, in order, sizes within one batch", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 40 }), (num, batch, n) => {
      let next = 0;
      const sizes: number[] = [];
      for (let i = 0; i < n; i++) {
        const { start, end } = shardBatches(num, batch, { index: i, count: n });
        const images = shardImages(num, batch, { index: i, count: n });
        assert.equal(images.first, next, "contiguous, no gap, no overlap");
        let count = 0;
        for (let j = start; j < end; j++) {
          const r = batchRange(num, batch, j);
          assert.equal(r.first, next + count);
          count += r.count;
        }
        assert.equal(count, images.count);
        next += count;
        sizes.push(end - start);
      }
      assert.equal(next, num, "all images");
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
      assert.equal(sizes.reduce((a, b) => a + b, 0), batchCount(num, batch));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("a batch's classes do not depend on how the run is cut: any subset gives the same classes", () => {
  const all = classesOf("uniform", 1000, 42, { first: 0, count: 500 });
  assert.deepEqual(classesOf("uniform", 1000, 42, { first: 123, count: 77 }), all.slice(123, 200));
  assert.deepEqual(classesOf([3, 1, 4], 10, 42, { first: 4, count: 4 }), [1, 4, 3, 1]);
  assert.notDeepEqual(classesOf("uniform", 1000, 43, { first: 0, count: 500 }), all, "the seed matters");
});

Deno.test("uniform classes are uniform: every class of 10 about 1/10 of 20,000 draws", () => {
  const counts = new Array(10).fill(0);
  for (let k = 0; k < 20_000; k++) counts[classOf("uniform", 10, 7, k)]++;
  // Binomial(20000, 0.1): sd 42; 5 sd either side.
  for (const c of counts) assert.ok(Math.abs(c - 2000) < 215, `counts ${counts}`);
  assert.ok(Array.from({ length: 1000 }, (_, k) => classOf("uniform", 1000, 0, k)).every((c) => c >= 0 && c < 1000));
});

Deno.test("--shard accepts i/n with 0 <= i < n and refuses anything else, by name", () => {
  assert.deepEqual(parseShard("3/8"), { index: 3, count: 8 });
  assert.deepEqual(parseShard("0/1"), { index: 0, count: 1 });
  for (const bad of ["8/8", "1/0", "-1/4", "1", "a/b", "1/2/3", "", "1 / 2", "0x1/2", "1.0/2"]) {
    assert.throws(() => parseShard(bad), (e) => isForaError(e) && e.code === "usage" && /--shard/.test(e.message), bad);
  }
});
