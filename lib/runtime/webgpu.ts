/** Whether ONNX Runtime's WebGPU execution provider (Dawn over Vulkan) can run here. */
import * as ort from "onnxruntime-node";
import { ForaError } from "../errors.ts";
import type { OrtRuntime, ProviderCheck, SystemProbe } from "./machine.ts";

export const VULKAN_LOADER = "libvulkan.so.1";

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

/** A WebGPU session on a one-node graph: the only proof that an adapter exists. */
export async function webGpuWorks(): Promise<boolean> {
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
