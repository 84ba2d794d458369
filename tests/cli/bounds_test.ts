/**
 * Every size and count a user or a file can give is bounded where it is read: flags at parse
 * time (exit 2), files when read (exit 1 naming the file or the key), a batch's memory before
 * it is allocated. Each case once exhausted the machine (the kernel's OOM killer) or ran for
 * minutes; here each child runs under a time limit, so a regression fails instead of hanging.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { MAX_SCHEDULE_BYTES, scheduleFile, writeScheduleFile } from "../../lib/fora/schedule_file.ts";
import { listDir, TINY_DIFFUSERS, withTempDir } from "../bundle/helpers.ts";
import { type CliResult, lines, runForaWith } from "./run.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-bounds-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(WORK, { recursive: true }));

const tiny = join(WORK, "tiny");
await convertBundle(TINY_DIFFUSERS, tiny, { precisions: ["fp32"] });

/** The CLI as a subprocess, killed after `seconds` (then the test fails on its exit status). */
function foraWithin(seconds: number, ...args: string[]): Promise<CliResult> {
  return runForaWith({ seconds }, ...args);
}

function assertOneLine(r: CliResult, code: number, ...says: (string | RegExp)[]): void {
  assert.equal(r.code, code, r.stderr);
  // Commander adds its "(add --help for usage)" hint to a flag's error.
  assert.equal(lines(r.stderr).filter((l) => l !== "(add --help for usage)").length, 1, r.stderr);
  for (const s of says) {
    if (typeof s === "string") assert.ok(r.stderr.includes(s), `"${r.stderr.trim()}" lacks "${s}"`);
    else assert.match(r.stderr, s);
  }
}

const gen = (...args: string[]) => ["generate", "-m", tiny, "--sampler", "ddim", "-o", join(WORK, "never"), ...args];

Deno.test("bounds: --schedule refuses a device and a file over its cap, without reading them", async () => {
  assertOneLine(await foraWithin(60, ...gen("--schedule", "/dev/zero")), 1, "--schedule /dev/zero");
  const big = join(WORK, "big.json");
  await Deno.writeTextFile(big, "");
  await Deno.truncate(big, MAX_SCHEDULE_BYTES + 1);
  assertOneLine(await foraWithin(60, ...gen("--schedule", big)), 1, `--schedule ${big}`, `more than the ${MAX_SCHEDULE_BYTES}`);
  const long = join(WORK, "long.json");
  await writeScheduleFile(long, { ...scheduleFile(["full"], {}), steps: 1001, kinds: ["full", ...Array(1000).fill("reuse")] });
  assertOneLine(await foraWithin(60, ...gen("--schedule", long)), 2, "1001 steps", "at most that many");
});

Deno.test("bounds: --steps, --threads and --batch are bounded where they are parsed (exit 2)", async () => {
  for (
    const [args, says] of [
      [["--steps", "1000000000"], "--steps must be a whole number from 1 to 1000"],
      [["--steps", "1001"], "--steps must be a whole number from 1 to 1000"],
      [["--threads", "100000"], "--threads must be a whole number from 1 to 256"],
      [["--batch", "100000"], "--batch must be a whole number from 1 to 65536"],
    ] as const
  ) {
    assertOneLine(await foraWithin(30, ...gen(...args)), 2, says);
  }
  assertOneLine(await foraWithin(30, "eval", "--batch", "100000"), 2, "--batch must be a whole number from 1 to 65536");
  assertOneLine(await foraWithin(30, "profile", "--threads", "3000"), 2, "--threads must be a whole number from 1 to 256");
});

Deno.test("bounds: manifest sizes beyond any real model are refused naming the key (exit 1)", async () => {
  for (
    const [key, value] of [
      ["depth", 1e9],
      ["inputSize", 2 ** 20],
      ["hiddenSize", 2 ** 30],
      ["numClasses", 1e12],
    ] as const
  ) {
    await withTempDir(async (dir) => {
      const bundle = join(dir, "bundle");
      await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
      const path = join(bundle, "manifest.json");
      const m = JSON.parse(await Deno.readTextFile(path));
      m.dit.config[key] = value;
      await Deno.writeTextFile(path, JSON.stringify(m));
      assertOneLine(
        await foraWithin(60, "generate", "-m", bundle, "--steps", "2", "-o", join(dir, "out")),
        1,
        `"dit.config.${key}" must be an integer from 1 to`,
      );
    });
  }
});

Deno.test("bounds: a batch that cannot fit in memory is refused before it is allocated, naming the size", async () => {
  await withTempDir(async (dir) => {
    // The shipped Fashion-MNIST DiT: 65536 samples need about 190 GB.
    const r = await foraWithin(120, "generate", "--batch", "65536", "--steps", "2", "-o", dir);
    assertOneLine(
      r,
      2,
      /a batch of 65536 samples needs at least [\d.]+ GB of memory, more than this machine's [\d.]+ GB; use a smaller --batch/,
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("bounds: an empty -o is a usage error in every command that writes (exit 2)", async () => {
  for (
    const args of [
      gen(),
      ["sample", "-m", tiny, "--num", "1"],
      ["similarity", "-m", tiny],
      ["merge", WORK],
    ]
  ) {
    assertOneLine(await foraWithin(30, ...args, "-o", ""), 2, '--out needs a path; "" names no file or folder');
  }
});

Deno.test("bounds: --steps 2 alone runs with the default -N clamped to the two steps", async () => {
  await withTempDir(async (dir) => {
    const r = await foraWithin(60, "generate", "-m", tiny, "--sampler", "ddim", "--steps", "2", "--json", "-o", dir);
    assert.equal(r.code, 0, r.stderr);
    const start = JSON.parse(r.stdout.split("\n")[0]);
    assert.equal(start.flags.cache_interval, 2);
    assert.deepEqual(start.plan.kind, ["full", "full"]);
    const given = await foraWithin(30, "generate", "-m", tiny, "--steps", "2", "-N", "3", "-o", dir);
    assertOneLine(given, 2, "--cache-interval 3 is larger than --steps 2");
  });
});
