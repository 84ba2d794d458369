/**
 * A full disk or a file-size limit during `fora sample` and `fora merge`: one clear error line,
 * exit 1, no partial file, and finished batches kept. Two ways to run out of room:
 *
 *   - `ulimit -f` (works everywhere): a write past the limit fails with EFBIG (SIGXFSZ ignored);
 *   - a 64 KiB tmpfs (needs root and a kernel that lets this process mount; otherwise the
 *     test is reported ignored): writes fail with ENOSPC, a real full disk.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { JOURNAL_FILE, RUN_FILE } from "../../lib/sample/folder.ts";
import { exists, listDir } from "../bundle/helpers.ts";
import { eventsOf, journalLines, runFora, runForaLimited, tempFiles, tinyBundle, workDir } from "./helpers.ts";

const WORK = await workDir("fora-full-disk-test-");
const BUNDLE = await tinyBundle(WORK);

/** 16 images of 16x16x3 make a 12.5 KB batch file; the run file and journal stay far below 8 KiB. */
const sampleArgs = (
  out: string,
  num = 16,
) => ["sample", "-m", BUNDLE, "--num", String(num), "--batch", "16", "--steps", "3", "--json", "-o", out];

Deno.test("sample under a file-size limit smaller than a batch: one clear error, exit 1, no partial batch file", async () => {
  const out = join(WORK, "limited");
  const r = await runForaLimited(8, ...sampleArgs(out));
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^error: .*samples-000000-000015\.npz: could not write \.npz batch: File too large \(os error 27\): the file system or a file-size limit \(ulimit -f\) does not allow a file this large; raise the limit or write elsewhere, then run the command again\n$/,
  );
  assert.deepEqual(await listDir(out), [RUN_FILE]);
  const end = eventsOf(r.stdout).at(-1)!;
  assert.equal(end.event, "run_end");
  assert.equal(end.event === "run_end" && end.status, "error");
});

Deno.test("merge under a file-size limit smaller than the merged file: exit 1, no output, no temp file", async () => {
  const shard = join(WORK, "complete");
  const done = await runFora(...sampleArgs(shard));
  assert.equal(done.code, 0, done.stderr);
  const out = join(WORK, "merged.npz");
  const r = await runForaLimited(8, "merge", shard, "--out", out);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: .*merged\.npz: could not write merged \.npz: File too large \(os error 27\).*ulimit -f.*\n$/);
  assert.equal(await exists(out), false);
  assert.deepEqual(await tempFiles(WORK), []);
});

Deno.test("generate under a file-size limit: exit 1 naming the file, no partial .npy or PNG", async () => {
  const out = join(WORK, "generate-out");
  const latents = join(WORK, "latents.npy"); // 128 + 4*8*8*4 bytes: over a 1 KiB limit
  const r = await runForaLimited(1, "generate", "-m", BUNDLE, "--steps", "3", "-o", out, "--latents-out", latents, "--json");
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: .*latents\.npy: could not write \.npy array: File too large \(os error 27\)\n$/);
  assert.equal(await exists(latents), false);
  assert.deepEqual(await listDir(out), []);
  assert.deepEqual(await tempFiles(WORK), []);
});

async function tryMount(dir: string): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  await Deno.mkdir(dir, { recursive: true });
  const r = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], stdout: "null", stderr: "null" })
    .output().catch(() => null);
  return r?.success ?? false;
}

async function unmount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: [dir], stdout: "null", stderr: "null" }).output();
}

const MOUNT = join(WORK, "tmpfs");
const mounted = await tryMount(MOUNT);
if (mounted) await unmount(MOUNT);

Deno.test({
  name: `sample onto a disk that fills up mid-run: exit 1 saying the disk is full, finished batches kept and recorded, no partial file${
    mounted ? "" : " (ignored: cannot mount a tmpfs here; needs root)"
  }`,
  ignore: !mounted,
  fn: async () => {
    assert.ok(await tryMount(MOUNT));
    try {
      await fillUp();
    } finally {
      await unmount(MOUNT);
    }
  },
});

async function fillUp(): Promise<void> {
  const out = join(MOUNT, "shard");
  // 8 batches of 12.5 KB cannot fit in 64 KiB.
  const r = await runFora(...sampleArgs(out, 128));
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^error: .*: No space left on device \(os error 28\): the disk is full; free space or write to another disk, then run the command again\n$/,
  );
  const recorded = await journalLines(out);
  assert.ok(recorded.length >= 1 && recorded.length < 8, `${recorded.length} batches recorded`);
  const names = (await listDir(out)).filter((n) => n.endsWith(".npz"));
  assert.equal(names.length, recorded.length, "every .npz on disk is a recorded, complete batch");
  assert.deepEqual(await tempFiles(out), []);
  assert.ok((await listDir(out)).includes(JOURNAL_FILE));
}
