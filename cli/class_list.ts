/**
 * `--class` values as single classes. A value is one class (an id, or a name of the model)
 * when it is one; otherwise a comma list ("1,2,sandal"), so that names with commas, such as
 * ImageNet's "tench, Tinca tinca", still work whole. `--class-file FILE` adds one class per line.
 */
import { readListFile } from "../lib/io/list_file.ts";

export function splitClassList(values: readonly string[], names: readonly string[] | null): string[] {
  const known = new Set(names?.map((n) => n.trim().toLowerCase()));
  return values.flatMap((v) => /^\s*\d+\s*$/.test(v) || known.has(v.trim().toLowerCase()) ? [v.trim()] : v.split(",").map((c) => c.trim()));
}

/** The --class values, then those of --class-file (one id or name per line). */
export async function classValues(flags: readonly string[], file: string | undefined): Promise<string[]> {
  return file === undefined ? [...flags] : [...flags, ...(await readListFile("--class-file", file)).map((l) => l.trim())];
}
