/**
 * Every command's result goes to stdout through one writer (lib/events/output.ts): a failed
 * write (`> /dev/full`: ENOSPC) is one `error:` line and exit 1, never a stack and exit 70; a
 * reader that closes the pipe early ends the command quietly with exit 0.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { CLI, runFora, tinyBundle, workDir } from "../sample/helpers.ts";

const WORK = await workDir("fora-stdout-test-");
const BUNDLE = await tinyBundle(WORK);
let dirs = 0;
const fresh = (name: string) => join(WORK, `${name}-${dirs++}`);

/** The CLI under bash with stdout sent to `target` (a shell redirection or pipe tail). */
async function runWithStdout(target: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  const quoted = [Deno.execPath(), ...CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const { code, stderr } = await new Deno.Command("bash", {
    args: ["-c", `set -o pipefail; ${quoted} ${target}`],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

const FULL = "error: cannot write to standard output: No space left on device (os error 28)\n";

Deno.test("--version, --help, a command's --help and fora info into /dev/full: exit 1, one error line", async () => {
  for (const args of [["--version"], ["--help"], ["info", "--help"], ["merge", "--help"], ["info", BUNDLE], ["info", "--json", BUNDLE]]) {
    const r = await runWithStdout("> /dev/full", ...args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, FULL, args.join(" "));
  }
});

Deno.test("convert, merge, profile, similarity and eval into /dev/full: exit 1, one error line", async () => {
  const shard = fresh("shard");
  const sampled = await runFora("sample", "-m", BUNDLE, "--num", "2", "--batch", "2", "--steps", "3", "-o", shard);
  assert.equal(sampled.code, 0, sampled.stderr);
  const cases: string[][] = [
    ["convert", "-q", TINY_DIFFUSERS, fresh("convert"), "--precision", "fp32"],
    ["merge", shard, "-o", join(WORK, "merged.npz")],
    ["profile", "-m", BUNDLE, "--steps", "3"],
    ["profile", "-m", BUNDLE, "--steps", "3", "--json"],
    ["similarity", "-m", BUNDLE, "--steps", "4", "-o", fresh("similarity")],
    ["similarity", "-m", BUNDLE, "--steps", "4", "-o", fresh("similarity"), "--json"],
    ["eval", "--samples", "2", "--batch", "2", "--sampler", "ddim", "--steps", "3"],
  ];
  for (const args of cases) {
    const r = await runWithStdout("> /dev/full", ...args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.ok(r.stderr.endsWith(FULL), `${args.join(" ")}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /internal error|\bat .*\.ts:\d+/, args.join(" "));
  }
});

Deno.test("a reader that closes the pipe at once ends --help and fora info quietly (exit 0, nothing on stderr)", async () => {
  for (const args of [["--help"], ["info", BUNDLE]]) {
    const r = await runWithStdout("| true", ...args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, "", args.join(" "));
  }
});
