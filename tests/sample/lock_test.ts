/**
 * One writer per sample folder (lib/sample/lock.ts): a second holder is refused with the first
 * one's pid; a lock file left by a dead process is taken over; a released lock leaves no file.
 * The CLI side (two real `fora sample` runs into one folder) is in sample_cli_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ForaError } from "../../lib/errors.ts";
import { LOCK_FILE, lockFolder } from "../../lib/sample/lock.ts";
import { exists } from "../bundle/helpers.ts";
import { workDir } from "./helpers.ts";

const WORK = await workDir("fora-lock-test-");

Deno.test("a folder's lock is refused to a second holder, naming the first one's pid, until released", async () => {
  const dir = await Deno.makeTempDir({ dir: WORK });
  const first = await lockFolder(dir);
  const record = JSON.parse(await Deno.readTextFile(join(dir, LOCK_FILE)));
  assert.equal(record.pid, Deno.pid);
  await assert.rejects(
    () => lockFolder(dir),
    (e) =>
      e instanceof ForaError && e.code === "io" &&
      e.message === `--out ${dir} is in use by another fora sample run (pid ${Deno.pid}); ` +
          "wait for it to end or stop it, or sample into another --out folder",
  );
  await first.release();
  assert.equal(await exists(join(dir, LOCK_FILE)), false, "released: no lock file left");
  const second = await lockFolder(dir);
  await second.release();
});

Deno.test("a lock file left by a process that died (SIGKILL) does not stand in the way", async () => {
  const dir = await Deno.makeTempDir({ dir: WORK });
  // A real holder, killed while it holds the lock: its file stays, naming a dead pid.
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `
      import { lockFolder } from ${JSON.stringify(new URL("../../lib/sample/lock.ts", import.meta.url).href)};
      await lockFolder(${JSON.stringify(dir)});
      console.log("locked");
      await new Promise(() => setInterval(() => {}, 1000));`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.match((await reader.read()).value ?? "", /locked/);
  await assert.rejects(() => lockFolder(dir), new RegExp(`in use by another fora sample run \\(pid ${holder.pid}\\)`));
  holder.kill("SIGKILL");
  await holder.status;
  await reader.cancel();
  assert.equal(JSON.parse(await Deno.readTextFile(join(dir, LOCK_FILE))).pid, holder.pid, "the dead holder's file is still there");
  const taken = await lockFolder(dir);
  assert.equal(JSON.parse(await Deno.readTextFile(join(dir, LOCK_FILE))).pid, Deno.pid);
  await taken.release();
});

Deno.test("a lock file being written by its holder (no pid yet) still refuses, and says the pid is not known", async () => {
  const dir = await Deno.makeTempDir({ dir: WORK });
  const first = await lockFolder(dir);
  await Deno.writeTextFile(join(dir, LOCK_FILE), "");
  await assert.rejects(() => lockFolder(dir), /in use by another fora sample run \(its pid is not recorded yet\)/);
  await first.release();
});

Deno.test("the holder's host is named only when it is another machine, and printed without control characters", async () => {
  const dir = await Deno.makeTempDir({ dir: WORK });
  const first = await lockFolder(dir);
  await Deno.writeTextFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 77, host: "node7\u001b]0;pwned\u0007" }));
  await assert.rejects(() => lockFolder(dir), (e) => {
    assert.match((e as Error).message, /\(pid 77 on node7\\u001b\]0;pwned\\u0007\)/);
    return true;
  });
  await first.release();
});
