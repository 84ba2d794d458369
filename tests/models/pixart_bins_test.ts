/** Resolution binning (lib/models/pixart/bins.ts): diffusers' aspect-ratio bins at 256, 512 and 1024 pixels. */
import { strict as assert } from "node:assert";
import { binnedSize } from "../../lib/models/pixart/bins.ts";

Deno.test("a request at a bin's own size samples there (entries of diffusers' 1024 table, height x width)", () => {
  for (const [h, w] of [[512, 2048], [512, 1856], [576, 1664], [960, 1024], [1024, 1024], [1152, 832], [1472, 704], [2048, 512]]) {
    assert.deepEqual(binnedSize(w, h, 1024, 16), { width: w, height: h });
  }
});

Deno.test("a request snaps to the bin of the nearest rounded ratio; 512 and 256 are the 1024 table halved and quartered", () => {
  assert.deepEqual(binnedSize(1920, 1080, 1024, 16), { width: 1344, height: 768 }); // 0.5625 -> the 0.57 bin
  assert.deepEqual(binnedSize(1080, 1920, 1024, 16), { width: 768, height: 1344 }); // 1.78 -> 1.75
  assert.deepEqual(binnedSize(100, 1000, 1024, 16), { width: 512, height: 2048 }); // beyond 4:1 -> the last bin
  assert.deepEqual(binnedSize(1000, 1001, 1024, 16), { width: 1024, height: 1024 });
  for (let w = 64; w <= 2048; w += 96) {
    for (const h of [64, 300, 777, 1024, 2000]) {
      const big = binnedSize(w, h, 1024, 16);
      assert.deepEqual(binnedSize(w, h, 512, 16), { width: big.width / 2, height: big.height / 2 });
      assert.deepEqual(binnedSize(w, h, 256, 16), { width: big.width / 4, height: big.height / 4 });
    }
  }
});

Deno.test("bins of other trained sizes are rounded to the size step; above 1024 px binning is refused", () => {
  assert.deepEqual(binnedSize(25, 15, 16, 4), { width: 20, height: 12 });
  assert.throws(() => binnedSize(2048, 2048, 2048, 16), /trained at up to 1024 px; this one is 2048 px: add --no-resolution-binning/);
});
