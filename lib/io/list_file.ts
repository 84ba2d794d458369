/**
 * A list given in a file, one entry per line (`--prompt-file`, `--class-file`): what does not
 * fit on a command line (ONNX Runtime cannot start with a long one: lib/runtime/command_line.ts).
 */
import { ForaError } from "../errors.ts";

/** The most a list file may hold: far more than any run's prompts or classes. */
export const MAX_LIST_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The non-blank lines of `path` (a regular UTF-8 text file), without their line ends;
 * at least one. `flag` names the option in errors.
 */
export async function readListFile(flag: string, path: string): Promise<string[]> {
  const fail = (why: string): never => {
    throw new ForaError("usage", `${flag} ${path}: ${why}`);
  };
  let bytes: Uint8Array;
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) fail("not a regular file; save the list to a file, one entry per line");
    if (st.size > MAX_LIST_FILE_BYTES) fail(`${st.size} bytes, more than the ${MAX_LIST_FILE_BYTES} a list file may hold`);
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof ForaError) throw e;
    return fail(`cannot read it: ${e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return fail("not UTF-8 text");
  }
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) fail("holds no entries; give one per line");
  return lines;
}
