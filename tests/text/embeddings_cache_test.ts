/** The embeddings cache serves only entries it can trust: a NaN or infinity in one makes it a miss, recomputed and rewritten. */
import assert from "node:assert/strict";
import { openEmbeddingsCache } from "../../lib/text/embeddings_cache.ts";
import { withTempDir } from "../bundle/helpers.ts";

Deno.test("embeddings cache: an entry with a NaN or an infinity is a miss; a finite one is served", async () => {
  await withTempDir(async (dir) => {
    const cache = await openEmbeddingsCache(dir);
    const features = new Float32Array([0.5, -1, 2, 3, 4, 5]);
    await cache.put("good", { features, tokens: 2 }, 3);
    assert.deepEqual((await cache.get("good", 3))?.features, features);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const data = features.slice();
      data[4] = bad;
      await cache.put("bad", { features: data, tokens: 2 }, 3);
      assert.equal(await cache.get("bad", 3), null, String(bad));
    }
  });
});
