/**
 * An output never lands on an input: `generate --latents-out` onto the bundle's files (by any
 * path, links included) or onto the PNG being written is refused before sampling, and
 * `merge --force -o` onto one of the batch files it merges is refused; the inputs are unchanged.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists } from "../bundle/helpers.ts";
import { runFora, tinyBundle, workDir } from "../sample/helpers.ts";

const WORK = await workDir("fora-overlap-test-");
const BUNDLE = await tinyBundle(WORK);

const generate = (...args: string[]) => runFora("generate", "-m", BUNDLE, "--steps", "3", ...args);

Deno.test("generate --latents-out onto a bundle file, into the bundle (also through a link), or onto the PNG: exit 2, nothing written", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(join(BUNDLE, "manifest.json")));
  const weight = join(BUNDLE, manifest.dit.weights.files[0]);
  await Deno.symlink(BUNDLE, join(WORK, "link-to-bundle"));
  const png = join(WORK, "img.png");
  const cases: [string[], string][] = [
    [["-o", join(WORK, "a"), "--latents-out", weight], `--latents-out ${weight}: give a file name ending in .npy`],
    [["-o", join(WORK, "a"), "--latents-out", join(BUNDLE, "x0.npy")], `--latents-out ${join(BUNDLE, "x0.npy")} is inside the bundle`],
    [
      ["-o", join(WORK, "a"), "--latents-out", join(WORK, "link-to-bundle", "weights", "new", "x0.npy")],
      "is inside the bundle",
    ],
    [["-o", png, "--latents-out", png], `--latents-out ${png}: give a file name ending in .npy`],
  ];
  for (const [args, says] of cases) {
    const r = await generate(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`error: `) && r.stderr.includes(says), r.stderr);
    assert.equal(r.stdout, "", "refused before run_start");
  }
  assert.equal(await exists(png), false);
  assert.equal(await exists(join(BUNDLE, "x0.npy")), false);
  assert.equal(await exists(join(BUNDLE, "weights", "new")), false);
  const verify = await runFora("info", "--verify", BUNDLE);
  assert.equal(verify.code, 0, verify.stderr);
});

Deno.test("merge --force -o onto one of the batch files it merges: exit 2, the batch file unchanged", async () => {
  const shard = join(WORK, "shard");
  const sampled = await runFora("sample", "-m", BUNDLE, "--num", "4", "--batch", "2", "--steps", "3", "-o", shard);
  assert.equal(sampled.code, 0, sampled.stderr);
  const batch = join(shard, "samples-000000-000001.npz");
  const before = await Deno.readFile(batch);
  await Deno.symlink(shard, join(WORK, "link-to-shard"));
  for (
    const out of [batch, join(WORK, "link-to-shard", "samples-000002-000003.npz"), join(shard, "..", "shard", "samples-000000-000001.npz")]
  ) {
    const r = await runFora("merge", shard, "--force", "-o", out);
    assert.equal(r.code, 2, `${out}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^error: --out .* is a batch file of .*shard, one of the folders being merged; write the merged file elsewhere\n$/,
    );
  }
  assert.deepEqual(await Deno.readFile(batch), before);
  // The same folder under another name is fine.
  const ok = await runFora("merge", shard, "-o", join(shard, "all.npz"));
  assert.equal(ok.code, 0, ok.stderr);
});
