/**
 * An interrupted `fora convert` leaves nothing behind: SIGINT / SIGTERM remove its hidden work
 * folder and end with the "interrupted" line (exit 130 / 143); the work folder of a convert
 * killed outright (SIGKILL) is removed by the next convert of the same DST, while that of a
 * live convert (which holds a lock on it) is left alone. The model is a random-weight DiT-S/2 (126 MB) copied with
 * --copy-weights, so a convert takes most of a second after its weights are placed: the
 * signal is sent when the "weights:" line appears.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { isInterrupted } from "../../lib/errors.ts";
import { ditPreset } from "../../lib/models/dit/config.ts";
import { writeRandomDit } from "../../tools/random_dit.ts";
import { exists, listDir, ROOT, TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { CLI, workDir } from "../sample/helpers.ts";
import { lines } from "./run.ts";

const WORK = await workDir("fora-convert-interrupt-");
const SRC = join(WORK, "src");
await writeRandomDit(SRC, ditPreset("S/2-256"));

/** `fora convert SRC DST --copy-weights`, sent `signal` once its weights are placed. */
async function convertSignalled(dst: string, signal: Deno.Signal): Promise<{ pid: number; code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...CLI, "convert", SRC, dst, "--copy-weights"],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let stderr = "";
  let sent = false;
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += chunk;
    if (!sent && /^weights: /m.test(stderr)) {
      child.kill(signal);
      sent = true;
    }
  }
  const status = await child.status;
  assert.ok(sent, `the convert never placed its weights:\n${stderr}`);
  return { pid: child.pid, code: status.code, stderr };
}

const workFolders = async (dir: string) => (await listDir(dir)).filter((n) => n.includes(".converting-"));

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} during fora convert removes its work folder and says so (exit ${code}); no DST`, async () => {
    const parent = join(WORK, `signal-${signal}`);
    await Deno.mkdir(parent);
    const r = await convertSignalled(join(parent, "bundle"), signal);
    assert.equal(r.code, code, r.stderr);
    assert.equal(lines(r.stderr).at(-1), `fora: interrupted by ${signal}; no partial files were written`);
    assert.deepEqual(await listDir(parent), [], "neither the work folder nor DST");
  });
}

Deno.test("the work folder of a convert killed with SIGKILL is removed by the next convert of the same DST; a live one's is kept", async () => {
  const parent = join(WORK, "killed");
  await Deno.mkdir(parent);
  const dst = join(parent, "bundle");
  const killed = await convertSignalled(dst, "SIGKILL");
  const left = await workFolders(parent);
  assert.equal(left.length, 1, `left: ${left}`);
  assert.match(left[0], new RegExp(`^\\.bundle\\.converting-${killed.pid}-[0-9a-f]{8}$`));
  // A running convert's folder, locked as a convert locks it (by this test process): not to be touched.
  const live = `.bundle.converting-${Deno.pid}-0123abcd`;
  await Deno.mkdir(join(parent, live));
  using holder = await Deno.open(join(parent, live), { read: true });
  assert.ok(await holder.tryLock(true));

  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [...CLI, "convert", TINY_DIFFUSERS, dst, "--precision", "fp32"],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 0, text);
  assert.ok(text.includes(`removed ${join(parent, left[0])}, left by a convert that did not finish (pid ${killed.pid})`), text);
  assert.deepEqual(await workFolders(parent), [live]);
  assert.equal(await exists(join(dst, "manifest.json")), true);
});

Deno.test("convertBundle stopped through its signal: rejects with interrupted, removes its work folder, writes no DST", async () => {
  const parent = join(WORK, "library");
  await Deno.mkdir(parent);
  const stop = new AbortController();
  await assert.rejects(
    () =>
      convertBundle(TINY_DIFFUSERS, join(parent, "bundle"), {
        precisions: ["fp32"],
        signal: stop.signal,
        log: (line) => {
          if (line.startsWith("weights: ")) stop.abort("SIGTERM");
        },
      }),
    (e) => isInterrupted(e) && /SIGTERM/.test((e as Error).message),
  );
  assert.deepEqual(await listDir(parent), []);
});
