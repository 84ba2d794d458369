/**
 * Packs, here, what the GPU machine needs besides the repository itself (which travels with
 * every device call): a Deno binary, fora's npm dependencies with onnxruntime-node pinned to
 * 1.29.0 (the version the only reachable CUDA provider build pairs with), that provider
 * (ONNX Runtime 1.29.0 for CUDA 13, from the npm package
 * com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9), and a Vulkan loader for the WebGPU row.
 * It writes one xz-compressed tar, splits it into parts that fit one device call each
 * next to the working tree (64 MiB per call in all), and puts part K into
 * bench/gpu/out/callK/ with the manifest: the folder that call K names in `carry`.
 *
 *   deno run -A bench/gpu/pack.ts                  # build (or reuse) the payload, split it
 *   deno run -A bench/gpu/pack.ts --cubin-arch all # keep the provider's code for every GPU
 *   deno run -A bench/gpu/pack.ts --split-only     # re-split the existing payload (tree grew)
 *
 * bench/gpu/README.md says how the calls go; bench/gpu/run.sh reassembles on the GPU machine.
 */
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { join, relative, resolve } from "node:path";
import { trimFatbins } from "./fatbin.ts";
import { exists, MiB, sh, sha256, writeCallParts } from "../../tools/device/payload.ts";

const ROOT = resolve(import.meta.dirname!, "..", "..");

export const ORT_NODE = {
  spec: "onnxruntime-node@1.29.0",
  integrity: "sha512-WjiVVB72riILz8HbYvxvmjKyE/WmkYoSfKY++axo5jAR609HQg8MwiG/HhShpTcJfmmAdzxxmB+MMST3A+SiPA==",
};
export const ORT_CUDA = {
  spec: "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
  integrity: "sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==",
  ortVersion: "1.29.0",
  dir: "package/Plugins/Linux/x64",
};
export const DENO_VERSION = "2.9.6";
/** Debian packages whose libraries travel in vulkan/ (as bench/gpu/README.md explains). */
export const VULKAN_DEBS = ["libvulkan1", "libglvnd0", "libglx0", "libgl1", "libegl1", "libopengl0", "libgles2"];

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: join(ROOT, "bench", "gpu", "out") },
    "cubin-arch": { type: "string", default: "90" },
    "part-mib": { type: "string" },
    "split-only": { type: "boolean", default: false },
    rebuild: { type: "boolean", default: false },
  },
});

const OUT = resolve(args.out!);
const CACHE = join(OUT, "cache"), STAGE = join(OUT, "stage"), PAYLOAD = join(OUT, "payload.tar.xz");
const log = (...a: unknown[]) => console.error(...a);

if (import.meta.main) {
  await Deno.mkdir(CACHE, { recursive: true });
  if (!args["split-only"] && (args.rebuild || !(await exists(PAYLOAD)) || !(await stampMatches()))) await buildPayload();
  if (!(await exists(PAYLOAD))) throw new Error(`${PAYLOAD} is missing: run without --split-only`);
  await writeCallParts(PAYLOAD, OUT, ROOT, args["part-mib"] ? Number(args["part-mib"]) * MiB : undefined);
}

// ---- the payload ---------------------------------------------------------------------------

/** What a payload was built from: fora's npm imports (but onnxruntime-node) and the cubin choice. */
async function stamp(): Promise<{ imports: Record<string, string>; cubin_arch: string }> {
  const { imports } = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const sorted = Object.fromEntries(Object.entries(imports as Record<string, string>).filter(([k]) => k !== "onnxruntime-node").sort());
  return { imports: sorted, cubin_arch: args["cubin-arch"]! };
}

async function stampMatches(): Promise<boolean> {
  const old = await Deno.readTextFile(join(OUT, "payload.stamp.json")).catch(() => "");
  const same = old === JSON.stringify(await stamp());
  if (!same) log("deno.json's imports or --cubin-arch changed since the payload was built: rebuilding it");
  return same;
}

async function buildPayload(): Promise<void> {
  const root = join(STAGE, "fora-gpu");
  await Deno.remove(STAGE, { recursive: true }).catch(() => {});
  await Deno.mkdir(root, { recursive: true });
  const provenance: Record<string, unknown> = { created: new Date().toISOString() };

  // Deno: the binary of the npm `deno` package this machine runs (same version as the project's).
  const deno = Deno.execPath();
  const version = (await sh([deno, "--version"])).split("\n")[0];
  if (!version.includes(DENO_VERSION)) throw new Error(`${deno} is ${version}; the project pins Deno ${DENO_VERSION}`);
  await Deno.copyFile(deno, join(root, "deno"));
  await Deno.chmod(join(root, "deno"), 0o755);
  provenance.deno = { from: await Deno.realPath(deno), version };

  // The provider's npm tarball, checked against its pinned integrity.
  const cudaTgz = await npmPack(ORT_CUDA);

  // The CUDA provider (and its shared bridge), trimmed to the GPU architectures asked for.
  const cudaDir = join(root, "ort-cuda");
  await Deno.mkdir(cudaDir);
  await sh([
    "tar",
    "-xzf",
    cudaTgz,
    "-C",
    cudaDir,
    "--strip-components=4",
    `${ORT_CUDA.dir}/libonnxruntime_providers_cuda.so`,
    `${ORT_CUDA.dir}/libonnxruntime_providers_shared.so`,
  ]);
  const cudaLib = join(cudaDir, "libonnxruntime_providers_cuda.so");
  let trim: unknown = "none: --cubin-arch all";
  if (args["cubin-arch"] !== "all") {
    const keep = args["cubin-arch"]!.split(",").map(Number);
    const bytes = await Deno.readFile(cudaLib);
    const report = trimFatbins(bytes, keep);
    await Deno.writeFile(cudaLib, bytes);
    trim = { keep_cubin_arch: keep, ...report };
    log(
      `CUDA provider: zeroed ${(report.zeroedBytes / MiB).toFixed(0)} MiB of cubins for other GPUs, kept ${
        (report.keptBytes / MiB).toFixed(0)
      } MiB`,
    );
  }
  provenance.cuda_provider = { package: ORT_CUDA.spec, onnxruntime: ORT_CUDA.ortVersion, cuda: 13, trim };

  // fora's npm dependencies with onnxruntime-node at 1.29.0, installed without its scripts.
  const app = join(root, "app");
  await Deno.mkdir(app);
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  config.imports["onnxruntime-node"] = `npm:${ORT_NODE.spec}`;
  await Deno.writeTextFile(join(app, "deno.json"), JSON.stringify(config, null, 2) + "\n");
  await Deno.copyFile(join(ROOT, "deno.lock"), join(app, "deno.lock"));
  await sh([deno, "install", "-q"], { cwd: app, env: { ONNXRUNTIME_NODE_INSTALL: "skip", DENO_NO_UPDATE_CHECK: "1" } });
  // Deno checked the tarball against the lock; the lock must hold the integrity pinned here.
  const locked = JSON.parse(await Deno.readTextFile(join(app, "deno.lock"))).npm?.[ORT_NODE.spec]?.integrity;
  if (locked !== ORT_NODE.integrity) throw new Error(`deno.lock has ${locked} for ${ORT_NODE.spec}; pinned: ${ORT_NODE.integrity}`);
  const ortPkg = join(app, "node_modules", ".deno", "onnxruntime-node@1.29.0", "node_modules", "onnxruntime-node");
  for (const os of ["darwin", "win32", "linux/arm64"]) {
    await Deno.remove(join(ortPkg, "bin", "napi-v6", os), { recursive: true }).catch(() => {});
  }
  const core = join(ortPkg, "bin", "napi-v6", "linux", "x64", "libonnxruntime.so.1");
  if (!(await exists(core))) throw new Error(`deno install left no ${core}`);
  provenance.onnxruntime_node = { package: ORT_NODE.spec, core: relative(root, core), tarball_integrity: ORT_NODE.integrity };

  // The Vulkan loader and the GL vendor-neutral dispatch libraries the NVIDIA Vulkan driver
  // (libGLX_nvidia) loads: the packages the device notes say made Vulkan run on those machines.
  // Used only where the machine has no Vulkan loader of its own (the WebGPU row).
  const vk = join(root, "vulkan");
  await Deno.mkdir(vk);
  const debDir = join(STAGE, "deb"), debs: string[] = [];
  for (const pkg of VULKAN_DEBS) {
    await sh(["apt-get", "download", pkg], { cwd: CACHE });
    const deb = [...Deno.readDirSync(CACHE)].map((e) => e.name).find((n) => n.startsWith(`${pkg}_`) && n.endsWith("_amd64.deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
    debs.push(deb);
    await sh(["dpkg-deb", "-x", join(CACHE, deb), debDir]);
  }
  const libDir = join(debDir, "usr", "lib", "x86_64-linux-gnu");
  for (const e of Deno.readDirSync(libDir)) {
    if (/\.so\.\d+$/.test(e.name)) await Deno.copyFile(await Deno.realPath(join(libDir, e.name)), join(vk, e.name));
  }
  await Deno.remove(debDir, { recursive: true });
  if (!(await exists(join(vk, "libvulkan.so.1")))) throw new Error("no libvulkan.so.1 in libvulkan1's package");
  provenance.vulkan_loader = { debs };

  provenance.imports = (await stamp()).imports;
  provenance.files = await hashTree(root, [
    "deno",
    "ort-cuda/libonnxruntime_providers_cuda.so",
    "ort-cuda/libonnxruntime_providers_shared.so",
    relative(root, core),
    "vulkan/libvulkan.so.1",
  ]);
  await Deno.writeTextFile(join(root, "PAYLOAD.json"), JSON.stringify(provenance, null, 2) + "\n");

  log("compressing (xz -6; a few minutes on 2 cores) ...");
  const tmp = `${PAYLOAD}.tmp`;
  await sh(["bash", "-c", `set -o pipefail; tar -C "${STAGE}" -cf - fora-gpu | xz -T0 -6 > "${tmp}"`]);
  await Deno.rename(tmp, PAYLOAD);
  await Deno.writeTextFile(join(OUT, "payload.stamp.json"), JSON.stringify(await stamp()));
  await Deno.remove(STAGE, { recursive: true });
  log(`payload: ${PAYLOAD} (${((await Deno.stat(PAYLOAD)).size / MiB).toFixed(1)} MiB)`);
}

async function npmPack(pkg: { spec: string; integrity: string }): Promise<string> {
  const name = pkg.spec.replace(/^@/, "").replace("/", "-").replace("@", "-") + ".tgz";
  const file = join(CACHE, name);
  if (!(await exists(file))) await sh(["npm", "pack", "-q", pkg.spec, "--pack-destination", CACHE]);
  const got = "sha512-" + createHash("sha512").update(await Deno.readFile(file)).digest("base64");
  if (got !== pkg.integrity) throw new Error(`${file}: integrity ${got} differs from the pinned ${pkg.integrity}`);
  return file;
}

// ---- helpers -------------------------------------------------------------------------------

async function hashTree(root: string, files: string[]): Promise<Record<string, { bytes: number; sha256: string }>> {
  const out: Record<string, { bytes: number; sha256: string }> = {};
  for (const f of files) {
    const data = await Deno.readFile(join(root, f));
    out[f] = { bytes: data.length, sha256: sha256(data) };
  }
  return out;
}
