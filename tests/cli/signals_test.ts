/**
 * SIGINT and SIGTERM during `fora generate`: the run stops at a step boundary, emits
 * run_end "interrupted", writes no image, and exits 130 / 143. A real subprocess gets
 * a real signal once it has reported its first step.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { CLI_PERMISSIONS } from "./run.ts";
import { listDir, ROOT, TINY_DIFFUSERS, withTempDir } from "../bundle/helpers.ts";

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} during generate stops at a step boundary: run_end interrupted, no image, exit ${code}`, async () => {
    await withTempDir(async (dir) => {
      const bundle = join(dir, "bundle");
      await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
      const out = join(dir, "out");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-q",
          ...CLI_PERMISSIONS,
          join(ROOT, "cli/main.ts"),
          "generate",
          "-m",
          bundle,
          "--steps",
          "1000",
          "--json",
          "-o",
          out,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes(`"event":"step"`)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      child.kill(signal);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      const status = await child.status;
      const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
      const events = text.trim().split("\n").map((l) => JSON.parse(l));
      const end = events[events.length - 1];
      assert.equal(status.code, code, stderr);
      assert.equal(end.event, "run_end");
      assert.equal(end.status, "interrupted");
      assert.ok(end.totals.full_steps + end.totals.reuse_steps < 1000, "stopped early");
      assert.ok(end.totals.sampling_ms > 0, `the steps that ran are sampling time: ${JSON.stringify(end.totals)}`);
      assert.equal(events.filter((e) => e.event === "image").length, 0);
      assert.deepEqual((await listDir(out)).filter((f) => !f.startsWith(".")), []);
      assert.match(stderr, new RegExp(`interrupted by ${signal}`));
      assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/, "no stack trace");
    });
  });
}

/**
 * The process's thread count (Linux): ONNX Runtime starts a session's intra-op threads when the
 * session opens. Read by cat: Deno lets only a program with every permission read /proc.
 */
async function threadCount(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" }).output();
  return Number(/^Threads:\s+(\d+)/m.exec(new TextDecoder().decode(stdout))?.[1] ?? 0);
}

Deno.test("SIGTERM while the sessions open: exit 143 with the interrupted line, the run never starts, nothing written", async () => {
  await withTempDir(async (dir) => {
    const bundle = join(dir, "bundle");
    await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"] });
    const out = join(dir, "out");
    // 256 intra-op threads a session (the most --threads allows): the first session's pool marks
    // the loading, and the remaining sessions take seconds to open after it even on an idle
    // machine (with 32 the window was short enough for the signal to land after run_start).
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", ...CLI_PERMISSIONS, join(ROOT, "cli/main.ts"), "generate", "-m", bundle, "--threads", "256", "--json", "-o", out],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 60_000;
    while ((await threadCount(child.pid)) < 256 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    child.kill("SIGTERM");
    const { code, stdout, stderr } = await child.output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 143, text);
    assert.match(text, /^fora: interrupted by SIGTERM; no partial files were written\n$/);
    assert.equal(new TextDecoder().decode(stdout), "", "no run_start: the run never started");
    assert.deepEqual((await listDir(out).catch(() => [])).filter((f) => !f.startsWith(".")), []);
  });
});
