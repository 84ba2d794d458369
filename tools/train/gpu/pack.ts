/**
 * Packs, here, what issue 18's GPU training needs besides the repository: Fashion-MNIST's training
 * split, which the GPU machine lacks. The repository itself travels with every device call and
 * already holds the trainer (tools/train/train_dit.py, tools/reference/) and the weights it starts
 * from (models/fashion-dit/), so only the data is packed: the two uncompressed idx files in one
 * xz -9e tar (21.6 MiB, 14% less than their own gzip files), split into parts that fit
 * one call each next to the working tree (tools/device/payload.ts), in tools/train/gpu/out/callK/.
 *
 *   deno task train:gpu:pack                 # build (or reuse) the payload, split it, print the calls
 *   deno task train:gpu:pack --split-only    # re-split the existing payload (the tree changed)
 *   deno task train:gpu:pack --data DIR      # the idx files from DIR instead of Debian's package
 *
 * tools/train/README.md ("On a GPU") says how the calls go; tools/train/gpu/run.sh runs there.
 */
import { parseArgs } from "node:util";
import { join, relative, resolve } from "node:path";
import { exists, MiB, sh, sha256, writeCallParts } from "../../device/payload.ts";

const ROOT = resolve(import.meta.dirname!, "..", "..", "..");
const FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"];
/** The last call's limit: machine checks and unpacking (under a minute), the probe, the training and its writes. */
const TRAIN_TIMEOUT_S = 540;

const { values: args } = parseArgs({
  options: {
    data: { type: "string", default: "/usr/share/datasets/fashion-mnist" },
    out: { type: "string", default: join(ROOT, "tools", "train", "gpu", "out") },
    "part-mib": { type: "string" },
    "split-only": { type: "boolean", default: false },
  },
});

const OUT = resolve(args.out!);
const PAYLOAD = join(OUT, "fashion-mnist.tar.xz");
const STAMP = join(OUT, "fashion-mnist.stamp.json");
const log = (...a: unknown[]) => console.error(...a);

if (import.meta.main) {
  await Deno.mkdir(OUT, { recursive: true });
  if (!args["split-only"]) {
    const stamp = JSON.stringify(await sources());
    if (!(await exists(PAYLOAD)) || (await Deno.readTextFile(STAMP).catch(() => "")) !== stamp) await buildPayload(stamp);
    else log(`reusing ${relative(ROOT, PAYLOAD)} (packed from the same files)`);
  }
  if (!(await exists(PAYLOAD))) throw new Error(`${PAYLOAD} is missing: run without --split-only`);
  const parts = await writeCallParts(PAYLOAD, OUT, ROOT, args["part-mib"] ? Number(args["part-mib"]) * MiB : undefined);
  const rel = relative(ROOT, OUT);
  console.log("device calls, back to back (the parts stay on the machine only while it is warm):");
  for (const p of parts) {
    const last = p.call === parts.length;
    const call = {
      command: `bash tools/train/gpu/run.sh ${last ? "train" : "stage"}`,
      carry: [`${rel}/call${p.call}`],
      timeout_s: last ? TRAIN_TIMEOUT_S : 120,
    };
    console.log(`  call ${p.call} of ${parts.length}: ${JSON.stringify(call)}`);
  }
}

/** The idx files (gzipped or not) in --data, each with its size and hash: the payload's stamp. */
async function sources(): Promise<Record<string, { path: string; bytes: number; sha256: string }>> {
  const found: Record<string, { path: string; bytes: number; sha256: string }> = {};
  for (const stem of FILES) {
    const path = [join(args.data!, stem), join(args.data!, `${stem}.gz`)].find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
    if (!path) {
      throw new Error(`${stem}[.gz] is not in ${args.data}: apt-get install dataset-fashion-mnist, or name the folder with --data`);
    }
    const data = await Deno.readFile(path);
    found[stem] = { path, bytes: data.length, sha256: sha256(data) };
  }
  return found;
}

async function buildPayload(stamp: string): Promise<void> {
  const stage = join(OUT, "stage");
  const dir = join(stage, "fashion-mnist");
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  for (const [stem, src] of Object.entries(JSON.parse(stamp) as Record<string, { path: string }>)) {
    const file = await Deno.open(src.path);
    const body = src.path.endsWith(".gz") ? file.readable.pipeThrough(new DecompressionStream("gzip")) : file.readable;
    await Deno.writeFile(join(dir, stem), body);
  }
  log("compressing (xz -9e: about a minute of one core) ...");
  const tmp = `${PAYLOAD}.tmp`;
  await sh(["bash", "-c", `set -o pipefail; tar -C "${stage}" -cf - fashion-mnist | xz -9e -T1 > "${tmp}"`]);
  await Deno.rename(tmp, PAYLOAD);
  await Deno.writeTextFile(STAMP, stamp);
  await Deno.remove(stage, { recursive: true });
  log(`payload: ${relative(ROOT, PAYLOAD)} (${((await Deno.stat(PAYLOAD)).size / MiB).toFixed(1)} MiB)`);
}
