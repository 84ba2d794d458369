/**
 * What the device checks ask of this machine and of the loaded ONNX Runtime: one
 * `SystemProbe` (the real one here; tests pass fakes) and the runtime's version, core
 * folder and compiled-in execution providers.
 */
import * as ort from "onnxruntime-node";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { elfNeeded, holdsString } from "./elf.ts";

export type Device = "cpu" | "cuda" | "webgpu";

export const CORE_LIB = "libonnxruntime.so.1";

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
