/**
 * Text from files that reaches the terminal (a bundle manifest's fora version, source path and
 * class names; a sample folder's settings) is printed with its control characters escaped as
 * \uXXXX: an OSC title change, a screen clear or an 8-bit CSI in a hostile file never reach
 * the terminal raw.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import type { Manifest } from "../../lib/bundle/manifest.ts";
import { RUN_FILE } from "../../lib/sample/folder.ts";
import { TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { runFora, workDir } from "../sample/helpers.ts";

const WORK = await workDir("fora-escapes-test-");
/** An OSC window-title change, a screen clear, a BEL and an 8-bit CSI. */
const HOSTILE = "\u001b]0;owned\u0007\u001b[2J\u009b31m";
const ESCAPED = "\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m";
// deno-lint-ignore no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

async function hostileBundle(name: string, edit: (m: Manifest) => void): Promise<string> {
  const dir = join(WORK, name);
  await convertBundle(TINY_DIFFUSERS, dir, { precisions: ["fp32"] });
  const path = join(dir, "manifest.json");
  const m = JSON.parse(await Deno.readTextFile(path));
  edit(m);
  await Deno.writeTextFile(path, JSON.stringify(m, null, 2));
  return dir;
}

Deno.test("fora info prints a manifest's fora version and source path with control characters escaped", async () => {
  const bundle = await hostileBundle("info", (m) => {
    m.foraVersion = `0.1.0${HOSTILE}`;
    m.source.path = `/src${HOSTILE}`;
  });
  const r = await runFora("info", bundle);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, RAW);
  assert.ok(r.stdout.includes(`written by fora 0.1.0${ESCAPED}`), r.stdout);
  assert.ok(r.stdout.includes(`/src${ESCAPED}`), r.stdout);
});

Deno.test("the --class error lists a manifest's class names with control characters escaped", async () => {
  const bundle = await hostileBundle("classes", (m) => {
    m.dit.classNames = Array.from({ length: m.dit.config.numClasses }, (_, i) => `c${i}${HOSTILE}`);
  });
  const r = await runFora("generate", "-m", bundle, "--class", "nope", "-o", join(WORK, "out"));
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, RAW);
  assert.ok(r.stderr.includes(`one of: c0${ESCAPED}, c1${ESCAPED}`), r.stderr);
});

Deno.test("sample and merge quote a sample folder's settings with control characters escaped", async () => {
  const bundle = join(WORK, "plain");
  await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
  const args = (
    out: string,
    shard: string,
  ) => ["sample", "-m", bundle, "--num", "4", "--batch", "2", "--steps", "3", "--shard", shard, "-o", join(WORK, out)];
  for (const [out, shard] of [["s0", "0/2"], ["s1", "1/2"]]) assert.equal((await runFora(...args(out, shard))).code, 0);
  const runFile = join(WORK, "s1", RUN_FILE);
  const run = JSON.parse(await Deno.readTextFile(runFile));
  run.settings.device = `cpu${HOSTILE}`;
  await Deno.writeTextFile(runFile, JSON.stringify(run));

  const again = await runFora(...args("s1", "1/2"));
  assert.equal(again.code, 2, again.stderr);
  assert.doesNotMatch(again.stderr, RAW);
  assert.match(again.stderr, /holds a different sample run: device is cpu\\u001b\]0;owned/);

  const merged = await runFora("merge", join(WORK, "s0"), join(WORK, "s1"), "-o", join(WORK, "m.npz"));
  assert.equal(merged.code, 1, merged.stderr);
  assert.doesNotMatch(merged.stderr, RAW);
  assert.ok(merged.stderr.includes(`cpu${ESCAPED}`), merged.stderr);
});
