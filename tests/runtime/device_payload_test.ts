/**
 * How tools/device/payload.ts splits a payload for the GPU machine's calls (bench/gpu and issue 18's
 * training): callK/ folders whose parts join back to the payload byte for byte, each with the
 * manifest that tools/device/parts.py checks there, and no folder left from an earlier split.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { exists, sha256, writeCallParts } from "../../tools/device/payload.ts";

const ROOT = resolve(import.meta.dirname!, "..", "..");

Deno.test("device payload: parts of the asked size join back to the payload, and every call's manifest lists them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = new Uint8Array(2500).map((_, i) => (i * 7) & 255);
    await Deno.writeFile(join(dir, "data.tar.xz"), data);
    await Deno.mkdir(join(dir, "call9")); // left by an earlier, longer split

    const parts = await writeCallParts(join(dir, "data.tar.xz"), dir, ROOT, 1000);

    assert.deepEqual(parts.map((p) => [p.call, p.name, p.bytes]), [
      [1, "data.tar.xz.part01", 1000],
      [2, "data.tar.xz.part02", 1000],
      [3, "data.tar.xz.part03", 500],
    ]);
    const chunks = await Promise.all(parts.map((p) => Deno.readFile(join(dir, `call${p.call}`, p.name))));
    assert.deepEqual(new Uint8Array(chunks.flatMap((c) => [...c])), data);
    for (const p of parts) {
      const manifest = JSON.parse(await Deno.readTextFile(join(dir, `call${p.call}`, "manifest.json")));
      assert.deepEqual(manifest.payload, { name: "data.tar.xz", bytes: 2500, sha256: sha256(data) });
      assert.deepEqual(manifest.parts, parts);
    }
    assert.equal(await exists(join(dir, "call9")), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
