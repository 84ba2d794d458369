/**
 * Whether ONNX Runtime's CUDA execution provider can run here, and exactly why not where it cannot.
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
 * `FORA_ORT_CUDA_DIR` names a folder holding the two provider libraries of the same
 * ONNX Runtime version (from the `onnxruntime-gpu` Python wheel's onnxruntime/capi/,
 * or the lib/ folder of the onnxruntime-linux-x64-gpu release archive). Since ONNX
 * Runtime only looks next to the core, fora links them there (a symbolic link per file;
 * the dynamic loader follows links) after checking the version.
 */
import { join, resolve } from "node:path";
import { ForaError } from "../errors.ts";
import { CORE_LIB, type OrtRuntime, type ProviderCheck, type SystemProbe } from "./machine.ts";

/** Environment variable: a folder of ONNX Runtime CUDA provider libraries (same version as the core). */
export const CUDA_DIR_ENV = "FORA_ORT_CUDA_DIR";
export const PROVIDER_SHARED = "libonnxruntime_providers_shared.so";
export const PROVIDER_CUDA = "libonnxruntime_providers_cuda.so";
/** Load order: ONNX Runtime loads the shared bridge first, then the CUDA provider. */
export const CUDA_PROVIDER_FILES = [PROVIDER_SHARED, PROVIDER_CUDA] as const;
/** Loaded by the CUDA provider at run time, not listed among its ELF dependencies. */
export const CUDNN = "libcudnn.so.9";

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
