/**
 * One writer per sample folder. A `fora sample` run holds DIR/.fora-sample.lock for as long
 * as it writes there: an exclusive advisory lock (flock) on that file, taken without waiting.
 * The kernel drops the lock when its process ends in any way (exit, crash, SIGKILL), so a
 * lock file left by a dead run is recovered by the next one, with no guess about whether a
 * recorded pid is still alive (or was reused). The file records the holder's pid and host,
 * for the message a second run prints, and is removed when its run ends.
 *
 * While a run holds the lock, no other run writes to the folder: the temp files it finds at
 * start-up are those of dead runs, and only then are they removed.
 */
import { join } from "node:path";
import { ForaError, printable } from "../errors.ts";
import { ioReason, writeAll } from "./files.ts";

export const LOCK_FILE = ".fora-sample.lock";

export interface FolderLock {
  /** Removes the lock file and drops the lock. */
  release(): Promise<void>;
}

/**
 * Takes `dir`'s lock, or throws a ForaError naming the run that holds it. `dir` must exist.
 */
export async function lockFolder(dir: string): Promise<FolderLock> {
  const path = join(dir, LOCK_FILE);
  // A run that ends removes the file: a lock won on a file that is no longer at `path` guards
  // nothing, so open the new one. Each retry means another run ended meanwhile.
  for (let attempt = 0; attempt < 8; attempt++) {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o644 });
    } catch (e) {
      throw new ForaError("io", `--out ${dir}: cannot write to the folder: ${ioReason(e)}; choose a writable folder`);
    }
    let kept = false;
    try {
      if (!await tryLock(file, path)) {
        throw new ForaError(
          "io",
          `--out ${dir} is in use by another fora sample run (${await holderOf(file)}); ` +
            "wait for it to end or stop it, or sample into another --out folder",
        );
      }
      if (!await isAt(file, path)) continue;
      await file.truncate(0);
      await writeAll(file, new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, host: hostName() }) + "\n"));
      kept = true;
      return {
        async release() {
          await Deno.remove(path).catch(() => {});
          file.close();
        },
      };
    } catch (e) {
      if (e instanceof ForaError) throw e;
      throw new ForaError("io", `${path}: cannot take the folder's lock: ${ioReason(e)}`);
    } finally {
      if (!kept) file.close();
    }
  }
  throw new ForaError("io", `${path}: other runs keep taking and leaving the folder's lock; run the command again`);
}

async function tryLock(file: Deno.FsFile, path: string): Promise<boolean> {
  try {
    return await file.tryLock(true);
  } catch (e) {
    throw new ForaError("io", `${path}: the file system does not allow locking this file (${ioReason(e)}); sample into a local folder`);
  }
}

/** Whether `file` is still the file at `path`. */
async function isAt(file: Deno.FsFile, path: string): Promise<boolean> {
  const [open, named] = await Promise.all([file.stat(), Deno.stat(path).catch(() => null)]);
  return named !== null && open.ino === named.ino && open.dev === named.dev;
}

/** "pid 1234" (and "on HOST" when another machine holds it), as the lock file records it. */
async function holderOf(file: Deno.FsFile): Promise<string> {
  let record: { pid?: unknown; host?: unknown } = {};
  try {
    await file.seek(0, Deno.SeekMode.Start);
    const text = new TextDecoder().decode((await readSome(file)) ?? new Uint8Array());
    record = JSON.parse(text);
  } catch {
    // Just created by its holder, not yet written: the pid is not known yet.
  }
  if (!Number.isSafeInteger(record?.pid)) return "its pid is not recorded yet";
  const host = typeof record.host === "string" && record.host !== hostName() ? ` on ${printable(record.host)}` : "";
  return `pid ${record.pid}${host}`;
}

async function readSome(file: Deno.FsFile): Promise<Uint8Array | null> {
  const buf = new Uint8Array(4096);
  const n = await file.read(buf);
  return n === null ? null : buf.subarray(0, n);
}

/** This machine's name, or "" where the permission to read it was not given. */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}
