/**
 * Which execution providers this machine can run, and exactly why not where it cannot.
 *
 * ONNX Runtime finds its CUDA provider only in the folder of the core library
 * (libonnxruntime.so.1, next to onnxruntime-node's native addon): it loads
 * `<that folder>/libonnxruntime_providers_shared.so` and then
 * `<that folder>/libonnxruntime_providers_cuda.so` (provider_bridge_ort.cc: runtime path +
 * file name), and both must come from the same ONNX Runtime version as the core. The CUDA
 * libraries that provider needs (cuBLAS, cuBLASLt, cuRAND, cudart of its CUDA major
 * version, cuDNN 9, and the driver's libcuda) are found by the dynamic loader: through
 * LD_LIBRARY_PATH, read once when the process starts, or the system's library cache.
 *
 * The checks here run before any session is created, so a missing file gives one
 * ForaError that names it, where it is looked for and how to get it, instead of
 * ONNX Runtime's log line and "Failed to load shared library".
 *
 * `FORA_ORT_CUDA_DIR` names a folder holding the two provider libraries of the same
 * ONNX Runtime version (from the `onnxruntime-gpu` Python wheel's onnxruntime/capi/,
 * or the lib/ folder of the onnxruntime-linux-x64-gpu release archive). Since ONNX
 * Runtime only looks next to the core, fora links them there (a symbolic link per file;
 * the dynamic loader follows links) after checking the version.
 */
import * as ort from "onnxruntime-node";
import { Buffer } from "node:buffer";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ForaError } from "../errors.ts";
import type { Device } from "./session.ts";

export type DeviceChoice = Device | "auto";
export const DEVICE_CHOICES = ["auto", "cpu", "cuda", "webgpu"] as const satisfies readonly DeviceChoice[];

/** Environment variable: a folder of ONNX Runtime CUDA provider libraries (same version as the core). */
export const CUDA_DIR_ENV = "FORA_ORT_CUDA_DIR";
export const CORE_LIB = "libonnxruntime.so.1";
export const PROVIDER_SHARED = "libonnxruntime_providers_shared.so";
export const PROVIDER_CUDA = "libonnxruntime_providers_cuda.so";
/** Load order: ONNX Runtime loads the shared bridge first, then the CUDA provider. */
export const CUDA_PROVIDER_FILES = [PROVIDER_SHARED, PROVIDER_CUDA] as const;
/** Loaded by the CUDA provider at run time, not listed among its ELF dependencies. */
export const CUDNN = "libcudnn.so.9";
export const VULKAN_LOADER = "libvulkan.so.1";

/** The ONNX Runtime that onnxruntime-node loaded: its version and the folder of its core library. */
export interface OrtRuntime {
  version: string;
  /** Folder of libonnxruntime.so.1: where ONNX Runtime looks for provider libraries. */
  coreDir: string;
  /** Execution providers compiled into the core (cpu, webgpu) or loadable beside it (cuda). */
  backends: { name: string; bundled: boolean }[];
}

/** Everything the checks ask of the machine; tests pass fakes. */
export interface SystemProbe {
  /** `${os}/${arch}`, e.g. linux/x86_64. */
  platform: string;
  env(name: string): string | undefined;
  isFile(path: string): boolean;
  /** null when the dynamic loader finds and loads `name` (a soname or a path), else why not. */
  load(name: string): string | null;
  /** The DT_NEEDED sonames of an ELF shared object; null when it cannot be read as one. */
  needed(path: string): string[] | null;
  /** Whether the file holds `text` as a NUL-terminated string (provider version check). */
  holdsString(path: string, text: string): boolean;
  /** CUDA devices the driver reports, or why none can be counted. */
  cudaDevices(): number | string;
  /** GPU device nodes (/dev/nvidia0, /dev/dri/renderD128, ...). */
  gpuNodes(): string[];
  /** Makes `link` a symbolic link to `target`; returns null or why not. */
  symlink(target: string, link: string): string | null;
}

/** A check's outcome: ready, or the list of what is missing, each line complete. */
export interface ProviderCheck {
  device: Device;
  ready: boolean;
  problems: string[];
  /** Lines saying what was done or found, for reports (fora's own links, the libraries used). */
  notes: string[];
}

// ---- the loaded ONNX Runtime ---------------------------------------------------------------

let runtimeCache: OrtRuntime | null = null;

export function ortRuntime(): OrtRuntime {
  if (runtimeCache) return runtimeCache;
  const backends = (ort as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] })
    .listSupportedBackends?.() ?? [{ name: "cpu", bundled: true }];
  runtimeCache = { version: ort.env.versions.node ?? ort.env.versions.common, coreDir: coreLibraryDir(), backends };
  return runtimeCache;
}

/** The folder of the core library actually mapped into this process, else where the addon keeps it. */
function coreLibraryDir(): string {
  try {
    for (const line of Deno.readTextFileSync("/proc/self/maps").split("\n")) {
      const path = line.slice(line.indexOf("/"));
      if (line.includes("/") && path.endsWith(`/${CORE_LIB}`)) return dirname(path);
    }
  } catch { /* not Linux, or no read permission: fall back to the package layout */ }
  const entry = fileURLToPath(import.meta.resolve("onnxruntime-node")); // .../onnxruntime-node/dist/index.js
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  const os = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  return resolve(dirname(entry), "..", "bin", "napi-v6", os, arch);
}

// ---- the real machine ----------------------------------------------------------------------

export function systemProbe(): SystemProbe {
  return {
    platform: `${Deno.build.os}/${Deno.build.arch}`,
    env: (name) => Deno.env.get(name),
    isFile: (path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    },
    load(name) {
      try {
        Deno.dlopen(name, {}).close();
        return null;
      } catch (e) {
        return (e as Error).message.replace(/^(Could not open library: )+/, "");
      }
    },
    needed: elfNeeded,
    holdsString,
    cudaDevices,
    gpuNodes() {
      const nodes: string[] = [];
      for (const [dir, re] of [["/dev", /^nvidia\d+$/], ["/dev/dri", /^renderD\d+$/]] as const) {
        try {
          for (const e of Deno.readDirSync(dir)) if (re.test(e.name)) nodes.push(join(dir, e.name));
        } catch { /* no such folder */ }
      }
      return nodes.sort();
    },
    symlink(target, link) {
      try {
        // A link left by an earlier FORA_ORT_CUDA_DIR that no longer resolves: replace it.
        if (Deno.lstatSync(link).isSymlink) Deno.removeSync(link);
      } catch { /* nothing there */ }
      try {
        Deno.symlinkSync(target, link);
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    },
  };
}

/** DT_NEEDED entries of a 64-bit little-endian ELF file, read from its headers only. */
export function elfNeeded(path: string): string[] | null {
  let file: Deno.FsFile | null = null;
  try {
    file = Deno.openSync(path, { read: true });
    const f = file;
    const read = (offset: number, length: number): DataView => {
      const buf = new Uint8Array(length);
      f.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = f.readSync(buf.subarray(got));
        if (n === null) throw new Error("short read");
        got += n;
      }
      return new DataView(buf.buffer);
    };
    const eh = read(0, 64);
    if (eh.getUint32(0) !== 0x7f454c46 || eh.getUint8(4) !== 2 || eh.getUint8(5) !== 1) return null;
    const shoff = Number(eh.getBigUint64(0x28, true)), shentsize = eh.getUint16(0x3a, true), shnum = eh.getUint16(0x3c, true);
    if (shentsize < 64 || shnum === 0 || shnum > 4096) return null;
    const sh = read(shoff, shentsize * shnum);
    const section = (i: number) => ({
      type: sh.getUint32(i * shentsize + 4, true),
      offset: Number(sh.getBigUint64(i * shentsize + 0x18, true)),
      size: Number(sh.getBigUint64(i * shentsize + 0x20, true)),
      link: sh.getUint32(i * shentsize + 0x28, true),
    });
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (s.type !== 6 /* SHT_DYNAMIC */) continue;
      const str = section(s.link);
      if (s.size > 1 << 20 || str.size > 16 << 20) return null;
      const dyn = read(s.offset, s.size), strtab = new Uint8Array(read(str.offset, str.size).buffer);
      const out: string[] = [];
      for (let p = 0; p + 16 <= s.size; p += 16) {
        const tag = dyn.getBigInt64(p, true);
        if (tag === 0n) break;
        if (tag !== 1n /* DT_NEEDED */) continue;
        const at = Number(dyn.getBigUint64(p + 8, true));
        const end = strtab.indexOf(0, at);
        out.push(new TextDecoder().decode(strtab.subarray(at, end < 0 ? undefined : end)));
      }
      return out;
    }
    return [];
  } catch {
    return null;
  } finally {
    file?.close();
  }
}

/** Scans the file, a window at a time, for `\0text\0`. */
export function holdsString(path: string, text: string, windowBytes = 16 << 20): boolean {
  const needle = Buffer.from(`\0${text}\0`, "latin1");
  let file: Deno.FsFile | null = null;
  try {
    file = Deno.openSync(path, { read: true });
    const window = Buffer.alloc(Math.max(windowBytes, 2 * text.length + 4));
    let carry = 0;
    for (;;) {
      const n = file.readSync(window.subarray(carry));
      if (n === null) return false;
      const filled = carry + n;
      if (window.subarray(0, filled).indexOf(needle) >= 0) return true;
      carry = Math.min(needle.length - 1, filled);
      window.copy(window, 0, filled - carry, filled);
    }
  } catch {
    return false;
  } finally {
    file?.close();
  }
}

/** cuInit + cuDeviceGetCount through the driver library. */
function cudaDevices(): number | string {
  let lib: Deno.DynamicLibrary<{ cuInit: Deno.ForeignFunction; cuDeviceGetCount: Deno.ForeignFunction }> | null = null;
  try {
    lib = Deno.dlopen(
      "libcuda.so.1",
      {
        cuInit: { parameters: ["u32"], result: "i32" },
        cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
      } as const,
    );
    const init = lib.symbols.cuInit(0) as number;
    if (init !== 0) return `cuInit failed with CUDA driver error ${init}${init === 100 ? " (no CUDA-capable device)" : ""}`;
    const count = new Int32Array(1);
    const rc = lib.symbols.cuDeviceGetCount(count) as number;
    return rc === 0 ? count[0] : `cuDeviceGetCount failed with CUDA driver error ${rc}`;
  } catch (e) {
    return (e as Error).message.replace(/^(Could not open library: )+/, "");
  } finally {
    lib?.close();
  }
}

// ---- CUDA ----------------------------------------------------------------------------------

/** Libraries every process has: never worth reporting. */
const SYSTEM_LIBS = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[-\w]*)\.so/;

const FRIENDLY: [RegExp, string][] = [
  [/^libcublasLt\.so/, "cuBLASLt"],
  [/^libcublas\.so/, "cuBLAS"],
  [/^libcurand\.so/, "cuRAND"],
  [/^libcudart\.so/, "CUDA runtime (cudart)"],
  [/^libcudnn\.so/, "cuDNN"],
  [/^libcufft\.so/, "cuFFT"],
  [/^libcuda\.so/, "NVIDIA driver"],
  [/^libnvrtc\.so/, "NVRTC"],
];

export function friendlyName(soname: string): string {
  return FRIENDLY.find(([re]) => re.test(soname))?.[1] ?? soname;
}

/** The CUDA major version a provider was built for, from its cudart dependency. */
export function cudaMajor(needed: readonly string[]): number | null {
  const m = needed.map((n) => /^libcudart\.so\.(\d+)/.exec(n)).find((x) => x);
  return m ? Number(m[1]) : null;
}

/**
 * Checks (and with `link`, completes from FORA_ORT_CUDA_DIR) what the CUDA execution
 * provider needs. Reads headers and loads libraries; creates no session.
 */
export function checkCuda(rt: OrtRuntime, sys: SystemProbe, opts: { link?: boolean } = {}): ProviderCheck {
  const problems: string[] = [], notes: string[] = [];
  const check: ProviderCheck = { device: "cuda", ready: false, problems, notes };
  if (sys.platform !== "linux/x86_64") {
    problems.push(`fora runs ONNX Runtime's CUDA execution provider on Linux x86-64 only; this is ${sys.platform}`);
    return check;
  }
  const here = (f: string) => join(rt.coreDir, f);
  let missing = CUDA_PROVIDER_FILES.filter((f) => !sys.isFile(here(f)));
  /** The CUDA provider whose dependencies are checked: the one in place, or the one about to be linked. */
  let provider: string | null = missing.includes(PROVIDER_CUDA) ? null : here(PROVIDER_CUDA);
  const fromDir = sys.env(CUDA_DIR_ENV);
  if (missing.length > 0 && fromDir) {
    const absent = CUDA_PROVIDER_FILES.filter((f) => !sys.isFile(join(fromDir, f)));
    if (absent.length > 0) {
      problems.push(`${CUDA_DIR_ENV}=${fromDir} does not hold ${absent.join(" and ")}`);
    } else if (!sys.holdsString(join(fromDir, PROVIDER_CUDA), rt.version)) {
      problems.push(
        `${join(fromDir, PROVIDER_CUDA)} is not from ONNX Runtime ${rt.version} (it does not hold the version string ` +
          `"${rt.version}"); the provider libraries must come from exactly the version of the core library`,
      );
    } else if (opts.link) {
      for (const f of missing) {
        const why = sys.symlink(resolve(fromDir, f), here(f));
        if (why) {
          problems.push(
            `cannot link ${here(f)} to ${join(fromDir, f)}: ${why}; copy the file there yourself (or a hard link, ` +
              `on the same file system)`,
          );
        } else notes.push(`linked ${here(f)} -> ${resolve(fromDir, f)} (from ${CUDA_DIR_ENV})`);
      }
      missing = CUDA_PROVIDER_FILES.filter((f) => !sys.isFile(here(f)));
      if (!missing.includes(PROVIDER_CUDA)) provider = here(PROVIDER_CUDA);
    } else {
      notes.push(`${missing.join(" and ")} would be linked from ${CUDA_DIR_ENV}=${fromDir} (ONNX Runtime ${rt.version})`);
      missing = [];
      provider = join(fromDir, PROVIDER_CUDA);
    }
  }
  if (missing.length > 0) {
    problems.unshift(`ONNX Runtime ${rt.version}'s CUDA provider libraries are missing from ${rt.coreDir}: ${missing.join(", ")}`);
  }

  const driver = sys.load("libcuda.so.1");
  if (driver) problems.push(`no NVIDIA driver: libcuda.so.1 cannot be loaded (${driver})`);
  else {
    const n = sys.cudaDevices();
    if (typeof n === "string") problems.push(`the NVIDIA driver reports no usable GPU: ${n}`);
    else if (n < 1) problems.push("the NVIDIA driver reports no CUDA device");
    else notes.push(`${n} CUDA device${n === 1 ? "" : "s"}`);
  }

  if (provider) {
    const needed = sys.needed(provider);
    if (needed === null) problems.push(`${provider} is not a readable 64-bit ELF shared library`);
    else {
      const libs = [...needed.filter((n) => !SYSTEM_LIBS.test(n) && !n.startsWith("libcuda.so")), CUDNN];
      const major = cudaMajor(needed);
      const unloadable = libs.map((n) => ({ n, why: sys.load(n) })).filter((x) => x.why !== null);
      for (const { n, why } of unloadable) {
        problems.push(`cannot load ${n} (${friendlyName(n)}${n === CUDNN ? " 9" : major ? `, CUDA ${major}` : ""}): ${why}`);
      }
      if (unloadable.length === 0) notes.push(`CUDA libraries found: ${libs.join(", ")}`);
    }
  }
  check.ready = problems.length === 0;
  return check;
}

/** The error for `--device cuda` when the check failed: what, where, how to install. */
export function cudaError(rt: OrtRuntime, check: ProviderCheck, sys: SystemProbe): ForaError {
  const cudaLibsMissing = check.problems.some((p) => p.startsWith("cannot load lib"));
  const lines = [
    `--device cuda: ONNX Runtime ${rt.version}'s CUDA execution provider cannot run here:`,
    ...check.problems.map((p) => `  - ${p}`),
    `Where ONNX Runtime looks: ${CUDA_PROVIDER_FILES.join(" and ")} only next to ${CORE_LIB}, in ${rt.coreDir}, ` +
    `and from the same ONNX Runtime version (${rt.version}); the CUDA libraries they need (cuBLAS, cuBLASLt, cuRAND, ` +
    `cudart of the provider's CUDA major version, cuDNN 9) and the driver's libcuda.so.1 through LD_LIBRARY_PATH ` +
    `(set before fora starts; now ${
      sys.env("LD_LIBRARY_PATH") ? `"${sys.env("LD_LIBRARY_PATH")}"` : "unset"
    }) or the system library cache (ldconfig).`,
    `To install the provider libraries, either:`,
    `  - on a machine with internet access, run onnxruntime-node's install step with its CUDA option in fora's folder: ` +
    `ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node@${rt.version} ` +
    `(it downloads the NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux ${rt.version}, a CUDA 12 build, into that folder), or`,
    `  - set ${CUDA_DIR_ENV} to a folder holding ${CUDA_PROVIDER_FILES.join(" and ")} of ONNX Runtime ${rt.version} ` +
    `(the onnxruntime-gpu ${rt.version} Python wheel's onnxruntime/capi/, or lib/ of the onnxruntime-linux-x64-gpu ` +
    `${rt.version} release archive): fora checks the version and links them into the folder above (it must be writable; ` +
    `else copy them there yourself).`,
  ];
  if (cudaLibsMissing) {
    lines.push(
      `To install the CUDA libraries: the CUDA toolkit and cuDNN 9 of that major version, or NVIDIA's pip wheels ` +
        `(CUDA 13: nvidia-cublas nvidia-cuda-runtime nvidia-curand nvidia-cudnn-cu13; CUDA 12: the -cu12 names), then ` +
        `put the lib folders under site-packages/nvidia/ on LD_LIBRARY_PATH.`,
    );
  }
  lines.push(`Or run on the CPU: --device cpu.`);
  return new ForaError("runtime", lines.join("\n"));
}

// ---- WebGPU --------------------------------------------------------------------------------

/** What the WebGPU provider (Dawn over Vulkan on Linux) needs before a session can try it. */
export function checkWebGpu(rt: OrtRuntime, sys: SystemProbe): ProviderCheck {
  const problems: string[] = [], notes: string[] = [];
  if (!rt.backends.some((b) => b.name === "webgpu")) {
    problems.push(`this onnxruntime-node build (${rt.version}) has no WebGPU execution provider`);
  } else if (sys.platform.startsWith("linux/")) {
    const why = sys.load(VULKAN_LOADER);
    if (why) problems.push(`the Vulkan loader ${VULKAN_LOADER} cannot be loaded (${why})`);
    else notes.push(`Vulkan loader found; GPU device nodes: ${sys.gpuNodes().join(", ") || "none"}`);
  }
  return { device: "webgpu", ready: problems.length === 0, problems, notes };
}

export function webGpuError(rt: OrtRuntime, problems: readonly string[]): ForaError {
  return new ForaError(
    "runtime",
    [
      `--device webgpu: ONNX Runtime ${rt.version}'s WebGPU execution provider (Dawn over Vulkan) cannot run here:`,
      ...problems.map((p) => `  - ${p}`),
      `It needs the Vulkan loader (Debian/Ubuntu: apt-get install libvulkan1) and a Vulkan driver for a GPU ` +
      `(NVIDIA: the driver's Vulkan ICD, nvidia_icd.json; if the loader does not find it, point VK_DRIVER_FILES at it).`,
      `Or run on the CPU: --device cpu.`,
    ].join("\n"),
  );
}

/** Dawn's words when Vulkan loads but offers no adapter. */
export function isNoAdapterError(message: string): boolean {
  return /WebGPU adapter|No supported adapters|RequestAdapter/i.test(message);
}

// ---- choosing and preparing ----------------------------------------------------------------

/** A WebGPU session on a one-node graph: the only proof that an adapter exists. */
async function webGpuWorks(): Promise<boolean> {
  const { serializeModel } = await import("../onnx/serialize.ts");
  const v = { name: "x", dtype: "float32" as const, shape: [4] };
  const bytes = serializeModel({
    name: "fora-webgpu-probe",
    inputs: [v],
    outputs: [{ ...v, name: "y" }],
    nodes: [{ name: "add", opType: "Add", domain: "", inputs: ["x", "x"], outputs: ["y"], attrs: {} }],
    initializers: [],
  });
  try {
    const s = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
    const out = await s.run({ x: new ort.Tensor("float32", Float32Array.of(1, 2, 3, 4), [4]) });
    const ok = (out.y.data as Float32Array)[3] === 8;
    await s.release();
    return ok;
  } catch {
    return false;
  }
}

/**
 * The device to run on. "auto" picks the best that works here: CUDA when its provider,
 * libraries and a GPU are all present; else WebGPU when a Vulkan loader, a GPU device node
 * and a probe session all say yes; else the CPU. Explicit choices are returned as given
 * (`prepareDevice` checks them when a session opens).
 */
export async function resolveDevice(
  choice: DeviceChoice,
  sys: SystemProbe = systemProbe(),
  rt: OrtRuntime = ortRuntime(),
): Promise<Device> {
  if (choice !== "auto") return choice;
  if (checkCuda(rt, sys, { link: true }).ready) return "cuda";
  if (checkWebGpu(rt, sys).ready && sys.gpuNodes().length > 0 && await webGpuWorks()) return "webgpu";
  return "cpu";
}

const prepared = new Map<Device, Promise<void>>();

/** Throws the ForaError that says what is missing for `device`; checks once per process. */
export function prepareDevice(device: Device, sys?: SystemProbe, rt?: OrtRuntime): Promise<void> {
  if (device === "cpu") return Promise.resolve();
  if (sys || rt) return prepareNow(device, sys ?? systemProbe(), rt ?? ortRuntime());
  let p = prepared.get(device);
  if (!p) {
    p = prepareNow(device, systemProbe(), ortRuntime());
    prepared.set(device, p);
  }
  return p;
}

function prepareNow(device: Device, sys: SystemProbe, rt: OrtRuntime): Promise<void> {
  try {
    if (device === "cuda") {
      const c = checkCuda(rt, sys, { link: true });
      if (!c.ready) throw cudaError(rt, c, sys);
    } else if (device === "webgpu") {
      const c = checkWebGpu(rt, sys);
      if (!c.ready) throw webGpuError(rt, c.problems);
    }
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Turns ONNX Runtime's session-creation error into fora's, with the device's own hint. */
export function sessionLoadError(device: Device, path: string, e: unknown): ForaError {
  const message = (e as Error)?.message ?? String(e);
  if (device === "webgpu" && isNoAdapterError(message)) {
    return webGpuError(ortRuntime(), [
      `Dawn found no GPU adapter: the Vulkan loader is there, but no Vulkan driver offers a device that WebGPU can use (ONNX Runtime: ${message.trim()})`,
    ]);
  }
  const hint = device === "cuda" && /Failed to load (shared )?library|providers_cuda/i.test(message)
    ? ` (the CUDA provider or a CUDA library failed to load; the checks before it passed, so look for a version mismatch ` +
      `between ${CUDA_PROVIDER_FILES.join("/")} and ONNX Runtime ${ortRuntime().version})`
    : "";
  return new ForaError("runtime", `ONNX Runtime cannot load ${path} on ${device}: ${message.trim()}${hint}`);
}

/** A plain-data report of every device, for `bench/gpu` and debugging. */
export function describeDevices(sys: SystemProbe = systemProbe(), rt: OrtRuntime = ortRuntime()) {
  const cuda = checkCuda(rt, sys, { link: false }), webgpu = checkWebGpu(rt, sys);
  return {
    onnxruntime: rt.version,
    coreDir: rt.coreDir,
    backends: rt.backends,
    ldLibraryPath: sys.env("LD_LIBRARY_PATH") ?? null,
    cudaDir: sys.env(CUDA_DIR_ENV) ?? null,
    gpuNodes: sys.gpuNodes(),
    cuda: { ready: cuda.ready, problems: cuda.problems, notes: cuda.notes },
    webgpu: { ready: webgpu.ready, problems: webgpu.problems, notes: webgpu.notes },
  };
}
