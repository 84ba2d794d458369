/**
 * Choosing and preparing the execution provider: "auto" picks the best that works here,
 * and an explicit choice is checked before any session opens, so a missing file gives one
 * ForaError that names it, where it is looked for and how to get it, instead of ONNX
 * Runtime's log line and "Failed to load shared library". The checks themselves: cuda.ts,
 * webgpu.ts, over the machine of machine.ts.
 */
import { ForaError } from "../errors.ts";
import { type Device, type OrtRuntime, ortRuntime, type SystemProbe, systemProbe } from "./machine.ts";
import { checkCuda, CUDA_DIR_ENV, CUDA_PROVIDER_FILES, cudaError } from "./cuda.ts";
import { checkWebGpu, isNoAdapterError, webGpuError, webGpuWorks } from "./webgpu.ts";

export type DeviceChoice = Device | "auto";
export const DEVICE_CHOICES = ["auto", "cpu", "cuda", "webgpu"] as const satisfies readonly DeviceChoice[];

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
