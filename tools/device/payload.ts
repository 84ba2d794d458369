/**
 * What a remote GPU machine's call carries besides the repository: a payload (one file, usually an
 * xz-compressed tar) split into parts that each fit in one call next to the working tree, which
 * travels with every call (64 MiB per call in all). Part K goes into OUT/callK/ with a manifest;
 * call K names that folder in its `carry`, and the machine keeps what earlier calls brought while
 * it stays warm. `parts.py` beside this file checks and joins the parts there.
 *
 * Used by bench/gpu/pack.ts and tools/train/gpu/pack.ts.
 */
import { createHash } from "node:crypto";
import { basename, join, relative } from "node:path";

export const MiB = 1 << 20;
/** What one call may carry: the working tree plus the carried folder. */
const CALL_LIMIT = 64 * MiB;
const MAX_PART = 60 * MiB;
/** Left free in each call, for files the tree gains between packing and calling. */
const SLACK = 2 * MiB;

export interface Part {
  name: string;
  call: number;
  bytes: number;
  sha256: string;
}

/** Bytes of what a call sends besides `carry`: the tracked and untracked-not-ignored files under `root`. */
export async function treeBytes(root: string): Promise<number> {
  const list = (await sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root })).split("\0");
  let total = 0;
  for (const f of new Set(list.filter(Boolean))) {
    try {
      total += (await Deno.lstat(join(root, f))).size;
    } catch { /* deleted in the work tree */ }
  }
  return total;
}

/**
 * Splits `payload` into OUT/callK/ folders (replacing earlier ones), each part as large as the
 * working tree under `root` leaves room for (or `partBytes`), and prints one line per call.
 */
export async function writeCallParts(payload: string, out: string, root: string, partBytes?: number): Promise<Part[]> {
  const tree = await treeBytes(root);
  const size = partBytes ?? Math.min(MAX_PART, CALL_LIMIT - tree - SLACK);
  if (partBytes === undefined && size < MiB) {
    throw new Error(`the working tree is ${(tree / MiB).toFixed(1)} MiB: no room left in a 64 MiB call (make it smaller)`);
  }
  if (!(size >= 1)) throw new Error(`a part size of ${size} bytes: give a positive number`);
  const data = await Deno.readFile(payload);
  const parts: Part[] = [];
  for await (const e of Deno.readDir(out)) if (/^call\d+$/.test(e.name)) await Deno.remove(join(out, e.name), { recursive: true });
  const count = Math.ceil(data.length / size);
  for (let i = 0; i < count; i++) {
    const chunk = data.subarray(i * size, Math.min(data.length, (i + 1) * size));
    const name = `${basename(payload)}.part${String(i + 1).padStart(2, "0")}`;
    const dir = join(out, `call${i + 1}`);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(join(dir, name), chunk);
    parts.push({ name, call: i + 1, bytes: chunk.length, sha256: sha256(chunk) });
  }
  const manifest = {
    payload: { name: basename(payload), bytes: data.length, sha256: sha256(data) },
    tree_bytes: tree,
    part_bytes: size,
    parts,
  };
  for (let i = 0; i < count; i++) {
    await Deno.writeTextFile(join(out, `call${i + 1}`, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  }
  const rel = relative(root, out);
  console.log(
    `payload ${(data.length / MiB).toFixed(1)} MiB in ${count} part(s) of at most ${(size / MiB).toFixed(1)} MiB; ` +
      `working tree ${(tree / MiB).toFixed(1)} MiB, so each call sends at most ${((tree + size) / MiB).toFixed(1)} MiB of 64:`,
  );
  for (const p of parts) {
    console.log(`  call ${p.call}: carry ["${rel}/call${p.call}"]  (${(p.bytes / MiB).toFixed(1)} MiB, sha256 ${p.sha256.slice(0, 12)}…)`);
  }
  return parts;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Runs a command; its stdout, or an error that quotes its stderr. */
export async function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), cwd: opts.cwd, env: opts.env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd.join(" ")} failed (exit ${out.code}): ${dec.decode(out.stderr).trim()}`);
  return dec.decode(out.stdout);
}
