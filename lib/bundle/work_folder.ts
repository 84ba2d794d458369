/**
 * The hidden folder a convert builds in, next to DST: `.NAME.converting-<pid>-<tag>`. Its
 * convert holds an exclusive lock (flock) on the folder while it works; the kernel drops the
 * lock when the process ends in any way. A convert stopped by a signal removes its own folder
 * (convert.ts); one killed outright (SIGKILL, a crash, a power cut) leaves it, and the next
 * convert of the same DST removes the folders it can lock: those whose convert is gone. (Deno
 * gives fora no /proc and no kill(pid, 0) to ask whether a pid lives; the lock answers
 * exactly, even when the pid has been reused.) The pid in the name is for people.
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";

export interface WorkFolder {
  path: string;
  /** Drops the lock (after the folder was moved into place or removed). */
  release(): void;
}

/** Creates DST's work folder in `parent`, after removing those of dead converts of DST. */
export async function newWorkFolder(parent: string, name: string, log: (line: string) => void): Promise<WorkFolder> {
  await removeStaleWorkFolders(parent, name, log);
  const path = join(parent, `${prefixOf(name)}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(path).catch((e) => {
    throw new ForaError("io", `${parent}: cannot create a folder here: ${(e as Error).message}`);
  });
  const held = await lockedFolder(path);
  return { path, release: () => held?.close() };
}

function prefixOf(name: string): string {
  return `.${name}.converting-`;
}

/** `dir` opened and locked, or null when another process holds it or it cannot be locked here. */
async function lockedFolder(dir: string): Promise<Deno.FsFile | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(dir, { read: true });
  } catch {
    return null;
  }
  const locked = await file.tryLock(true).catch(() => false);
  if (!locked) file.close();
  return locked ? file : null;
}

async function removeStaleWorkFolders(parent: string, name: string, log: (line: string) => void): Promise<void> {
  const prefix = prefixOf(name);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch {
    return; // an unreadable parent: creating the work folder in it reports the problem
  }
  for (const e of entries) {
    const m = e.isDirectory && e.name.startsWith(prefix) ? /^(\d+)-[0-9a-f]{8}$/.exec(e.name.slice(prefix.length)) : null;
    if (!m) continue;
    const path = join(parent, e.name);
    const held = await lockedFolder(path);
    if (!held) continue; // a convert at work
    try {
      await Deno.remove(path, { recursive: true });
      log(`removed ${path}, left by a convert that did not finish (pid ${m[1]})`);
    } catch (err) {
      log(`warning: could not remove ${path}, left by a convert that did not finish: ${(err as Error).message}`);
    } finally {
      held.close();
    }
  }
}
