/**
 * Devices and system files (/dev/stdin, /proc/...) given where fora wants a file or folder:
 * one plain error line, exit 1, and none of Deno's advice to run "with the --allow-all flag".
 */
import assert from "node:assert/strict";
import { runFora } from "./run.ts";

Deno.test("/dev/stdin and /proc paths as inputs or outputs: exit 1, one line, no Deno permission advice", async () => {
  const cases: [string[], string][] = [
    [["generate", "--steps", "3", "--latents-in", "/dev/stdin", "-o", "/tmp/fora-never"], "/dev/stdin"],
    [["generate", "--steps", "3", "--schedule", "/dev/stdin", "-o", "/tmp/fora-never"], "/dev/stdin"],
    [["info", "/proc/self/cwd"], "/proc/self/cwd"],
    [["convert", "/proc/self/cwd", "/tmp/fora-never-bundle"], "/proc/self/cwd"],
    [["sample", "--num", "2", "-o", "/proc/fora-never"], "/proc/fora-never"],
    [["merge", "/proc/self", "-o", "/tmp/fora-never.npz"], "/proc/self/fora-sample.json"],
  ];
  for (const [args, path] of cases) {
    const r = await runFora(...args);
    const what = `${args.join(" ")}: ${r.stderr}`;
    assert.equal(r.code, 1, what);
    assert.match(r.stderr, /^error: [^\n]*\n$/, what);
    assert.ok(r.stderr.includes(`${path} is a device or system file, which fora does not open (regular files and folders only)`), what);
    assert.doesNotMatch(r.stderr, /allow-all|run again with/, what);
  }
});
