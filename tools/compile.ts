/**
 * `deno task compile`: builds `dist/fora`, one self-contained binary of the CLI.
 *
 *   deno run --allow-read --allow-write --allow-env --allow-run tools/compile.ts [--output PATH] [--target TRIPLE]
 *
 * How the binary finds ONNX Runtime: onnxruntime-node's native addon
 * (onnxruntime_binding.node) loads libonnxruntime.so.1 from its own folder
 * (RUNPATH $ORIGIN). The binary is built with `--self-extracting`, so on first run it
 * unpacks its embedded files, node_modules included, to disk and both libraries sit
 * side by side there. The other platforms' ONNX Runtime binaries (~250 MB) are left out.
 *
 * `deno compile` needs Deno's runtime base binary (denort), which it downloads from
 * dl.deno.land, or takes from the path in DENORT_BIN. Where neither works, this script
 * says so in one plain message and exits 1.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys"];
const ORT_PLATFORMS = ["darwin/arm64", "linux/arm64", "linux/x64", "win32/arm64", "win32/x64"];

export const DENORT_MESSAGE = "deno compile needs Deno's runtime base (denort), downloaded from dl.deno.land, " +
  "which this machine cannot reach; run on a machine with internet access or set DENORT_BIN to a local denort binary " +
  `(the one for Deno ${Deno.version.deno})`;

function parseArgs(args: string[]): { output: string; target?: string } {
  let output = join(ROOT, "dist", "fora");
  let target: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if ((a === "--output" || a === "-o") && i + 1 < args.length) output = resolve(args[++i]);
    else if (a === "--target" && i + 1 < args.length) target = args[++i];
    else {
      console.error(`error: unknown argument ${JSON.stringify(a)}; usage: tools/compile.ts [--output PATH] [--target TRIPLE]`);
      Deno.exit(2);
    }
  }
  return { output, target };
}

/** onnxruntime-node's bin/napi-v6 folder name for a Deno target triple (or this machine). */
function ortPlatform(target?: string): string {
  const triple = target ?? Deno.build.target;
  const os = triple.includes("linux") ? "linux" : triple.includes("darwin") ? "darwin" : triple.includes("windows") ? "win32" : "";
  const arch = triple.startsWith("x86_64") ? "x64" : triple.startsWith("aarch64") ? "arm64" : "";
  const platform = `${os}/${arch}`;
  if (!ORT_PLATFORMS.includes(platform)) {
    console.error(`error: onnxruntime-node ships no native library for ${triple}`);
    Deno.exit(1);
  }
  return platform;
}

async function run(args: string[], opts: { capture?: boolean } = {}): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "inherit",
    stderr: opts.capture ? "piped" : "inherit",
    env: { ONNXRUNTIME_NODE_INSTALL: "skip" },
  }).spawn();
  let stderr = "";
  if (opts.capture && child.stderr) {
    // Pass deno's progress through while keeping a copy to recognise the failure.
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      await Deno.stderr.write(chunk);
      stderr += decoder.decode(chunk, { stream: true });
    }
  }
  const { code } = await child.status;
  return { code, stderr };
}

/** True when deno compile failed because it could not get its denort base binary. */
export function isDenortFailure(stderr: string): boolean {
  const text = plain(stderr);
  return /denort/i.test(text) &&
    /(error sending request|dns error|Connect|timed out|Could not find denort|Setting up base binary|Download)/i.test(text);
}

/** deno colours its output; strip the escape codes before matching. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

async function main(): Promise<number> {
  const { output, target } = parseArgs(Deno.args);
  const ortDir = join(ROOT, "node_modules", "onnxruntime-node");
  if (!existsSync(ortDir)) {
    // A fresh clone: fetch the npm packages (from the lockfile) so the native files can be listed.
    const { code } = await run(["install"]);
    if (code !== 0) return code;
  }
  const keep = ortPlatform(target);
  const excludes = ORT_PLATFORMS.filter((p) => p !== keep).flatMap((p) => [
    "--exclude",
    join(Deno.realPathSync(ortDir), "bin", "napi-v6", ...p.split("/")),
  ]);
  const args = [
    "compile",
    ...PERMISSIONS,
    "--self-extracting",
    ...excludes,
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    join(ROOT, "cli", "main.ts"),
  ];
  console.error(`deno ${args.map((a) => a.startsWith(ROOT) ? a.slice(ROOT.length + 1) : a).join(" ")}`);
  const { code, stderr } = await run(args, { capture: true });
  if (code !== 0) {
    const denortBin = Deno.env.get("DENORT_BIN");
    if (denortBin && /Writing deno compile executable/.test(plain(stderr))) {
      console.error(
        `deno compile could not use DENORT_BIN=${denortBin}: it must be the denort binary of Deno ${Deno.version.deno} ` +
          `for this target (from denort-<target>.zip under dl.deno.land/release/v${Deno.version.deno}/)`,
      );
      return 1;
    }
    if (isDenortFailure(stderr)) {
      console.error(DENORT_MESSAGE);
      return 1;
    }
    console.error(`error: deno compile failed (exit ${code}); see its output above`);
    return 1;
  }
  console.error(`built ${output}; try: ${output} --help`);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
