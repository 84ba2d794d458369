/**
 * For the `fora sample` / `fora merge` tests: one tiny bundle converted per test file, the
 * real CLI in a subprocess (plain, under a file-size limit, or streaming its events so a test
 * can signal it mid-run), and readers for sample folders and .npz files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { JOURNAL_FILE } from "../../lib/sample/folder.ts";
import { readNpz } from "../../lib/sample/npz.ts";
import type { ForaEvent } from "../../lib/events/types.ts";
import { CLI_PERMISSIONS, type CliResult } from "../cli/run.ts";
import { listDir, ROOT, TINY_DIFFUSERS } from "../bundle/helpers.ts";

export { runFora } from "../cli/run.ts";

/** A temp folder for the test file, removed when the process ends. */
export async function workDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  return dir;
}

/** The tiny latent DiT (10 classes, 8x8x4 latents) with its VAE: 16x16 RGB images. */
export async function tinyBundle(work: string): Promise<string> {
  const dir = join(work, "bundle-tiny");
  await convertBundle(TINY_DIFFUSERS, dir, { precisions: ["fp32"] });
  return dir;
}

export const CLI = ["run", "-q", ...CLI_PERMISSIONS, join(ROOT, "cli", "main.ts")];

/** The CLI under bash with `ulimit -f <blocks>` (1024-byte blocks) and SIGXFSZ ignored, so an oversized write fails with EFBIG. */
export async function runForaLimited(blocks: number, ...args: string[]): Promise<CliResult> {
  const quoted = [Deno.execPath(), ...CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", `trap '' XFSZ; ulimit -f ${blocks}; exec ${quoted}`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

/** A CLI subprocess whose NDJSON events can be awaited one by one. */
export interface LiveRun {
  child: Deno.ChildProcess;
  events: ForaEvent[];
  /** Reads events until `pred` holds for the latest one; false if the stream ended first. */
  until(pred: (e: ForaEvent, all: ForaEvent[]) => boolean): Promise<boolean>;
  /** Reads the rest; returns the exit status and stderr. */
  finish(): Promise<{ code: number; signal: Deno.Signal | null; stderr: string }>;
}

export function spawnFora(...args: string[]): LiveRun {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...CLI, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const events: ForaEvent[] = [];
  let buffer = "";
  let ended = false;
  const pump = async (): Promise<ForaEvent[]> => {
    if (ended) return [];
    const { value, done } = await reader.read();
    if (done) {
      ended = true;
      return [];
    }
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    const fresh = lines.filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as ForaEvent);
    events.push(...fresh);
    return fresh;
  };
  const stderr = new Response(child.stderr).text();
  return {
    child,
    events,
    async until(pred) {
      for (;;) {
        const before = events.length;
        await pump();
        for (let i = before; i < events.length; i++) if (pred(events[i], events.slice(0, i + 1))) return true;
        if (ended) return false;
      }
    },
    async finish() {
      while (!ended) await pump();
      const status = await child.status;
      return { code: status.code, signal: status.signal, stderr: await stderr };
    },
  };
}

/** The journal's lines, parsed. */
export async function journalLines(dir: string): Promise<{ first: number; count: number }[]> {
  const text = await Deno.readTextFile(join(dir, JOURNAL_FILE)).catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** The names in a folder that are temp files (a dot, then `.tmp-`). */
export async function tempFiles(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((n) => n.startsWith(".") && n.includes(".tmp-"));
}

export async function npzArrays(path: string) {
  const arrays = readNpz(await Deno.readFile(path), path);
  const images = arrays.get("arr_0")!, labels = arrays.get("arr_1")!;
  assert.equal(images.dtype, "|u1");
  assert.equal(labels.dtype, "<i8");
  return { shape: images.shape, pixels: images.bytes, labels: [...new BigInt64Array(labels.bytes.slice().buffer)].map(Number) };
}

export function eventsOf(stdout: string): ForaEvent[] {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}
