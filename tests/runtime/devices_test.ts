/**
 * Device detection and its errors (lib/runtime/devices.ts), on fake machines: which files
 * are missing, where ONNX Runtime looks for them, how to install them, what FORA_ORT_CUDA_DIR
 * does, and what "auto" picks. Then the same checks on this real machine, and the ELF and
 * string readers they rest on.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describeDevices, prepareDevice, resolveDevice, sessionLoadError } from "../../lib/runtime/devices.ts";
import { checkCuda, CUDA_DIR_ENV, cudaError, cudaMajor, PROVIDER_CUDA, PROVIDER_SHARED } from "../../lib/runtime/cuda.ts";
import { checkWebGpu } from "../../lib/runtime/webgpu.ts";
import { elfNeeded, holdsString } from "../../lib/runtime/elf.ts";
import { type OrtRuntime, ortRuntime, type SystemProbe, systemProbe } from "../../lib/runtime/machine.ts";
import { ForaError } from "../../lib/errors.ts";

const CORE = "/opt/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64";
const RT: OrtRuntime = {
  version: "1.29.0",
  coreDir: CORE,
  backends: [{ name: "cpu", bundled: true }, { name: "webgpu", bundled: true }, { name: "cuda", bundled: false }],
};
/** DT_NEEDED of the real ORT 1.29.0 CUDA 13 provider (com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9). */
const CUDA13_NEEDED = [
  "libcublasLt.so.13",
  "libcublas.so.13",
  "libcurand.so.10",
  "libcudart.so.13",
  "libcuda.so.1",
  "libdl.so.2",
  "libstdc++.so.6",
  "libm.so.6",
  "libc.so.6",
  "ld-linux-x86-64.so.2",
];
const CUDA_LIBS = ["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcudnn.so.9"];

interface Fake extends SystemProbe {
  links: [target: string, link: string][];
}

function fakeSystem(o: {
  files?: string[];
  loadable?: string[];
  devices?: number | string;
  env?: Record<string, string>;
  versionIn?: Record<string, string>;
  nodes?: string[];
  platform?: string;
  symlinkFails?: string;
} = {}): Fake {
  const files = new Set(o.files ?? []);
  const loadable = new Set(o.loadable ?? []);
  const links: [string, string][] = [];
  return {
    links,
    platform: o.platform ?? "linux/x86_64",
    env: (n) => o.env?.[n],
    isFile: (p) => files.has(p),
    load: (n) => (loadable.has(n) ? null : `${n}: cannot open shared object file: No such file or directory`),
    needed: (p) => (p.endsWith(PROVIDER_CUDA) && files.has(p) ? CUDA13_NEEDED : null),
    holdsString: (p, text) => o.versionIn?.[p] === text,
    cudaDevices: () => o.devices ?? 1,
    gpuNodes: () => o.nodes ?? [],
    symlink(target, link) {
      if (o.symlinkFails) return o.symlinkFails;
      links.push([target, link]);
      files.add(link);
      return null;
    },
  };
}

const providersInPlace = [join(CORE, PROVIDER_SHARED), join(CORE, PROVIDER_CUDA)];
const everythingLoads = ["libcuda.so.1", ...CUDA_LIBS, "libvulkan.so.1"];

Deno.test("cuda check: with nothing installed, names both provider files and the folder ONNX Runtime looks in", () => {
  const c = checkCuda(RT, fakeSystem());
  assert.equal(c.ready, false);
  assert.match(
    c.problems[0],
    /CUDA provider libraries are missing from .*napi-v6\/linux\/x64: libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so/,
  );
  assert.ok(c.problems.some((p) => /no NVIDIA driver: libcuda\.so\.1 cannot be loaded/.test(p)));
});

Deno.test("cuda error: says which files, where they are looked for, and both ways to install them", () => {
  const sys = fakeSystem({ env: { LD_LIBRARY_PATH: "/usr/local/cuda/lib64" } });
  const e = cudaError(RT, checkCuda(RT, sys), sys);
  assert.ok(e instanceof ForaError);
  assert.equal(e.code, "runtime");
  const m = e.message;
  assert.match(m, /^--device cuda: ONNX Runtime 1\.29\.0's CUDA execution provider cannot run here:/);
  assert.match(m, /only next to libonnxruntime\.so\.1, in \/opt\/app\/node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64/);
  assert.match(m, /same ONNX Runtime version \(1\.29\.0\)/);
  assert.match(m, /cuBLAS, cuBLASLt, cuRAND, cudart .* cuDNN 9/);
  assert.match(m, /LD_LIBRARY_PATH \(set before fora starts; now "\/usr\/local\/cuda\/lib64"\)/);
  assert.match(m, /ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node@1\.29\.0/);
  assert.match(
    m,
    /set FORA_ORT_CUDA_DIR to a folder holding libonnxruntime_providers_shared\.so and libonnxruntime_providers_cuda\.so of ONNX Runtime 1\.29\.0/,
  );
  assert.match(m, /--device cpu/);
});

Deno.test("cuda check: provider in place but CUDA 13 libraries missing lists each by soname and name", () => {
  const sys = fakeSystem({ files: providersInPlace, loadable: ["libcuda.so.1", "libcudart.so.13"] });
  const c = checkCuda(RT, sys);
  assert.equal(c.ready, false);
  for (
    const [lib, name] of [["libcublasLt.so.13", "cuBLASLt, CUDA 13"], ["libcublas.so.13", "cuBLAS, CUDA 13"], [
      "libcurand.so.10",
      "cuRAND, CUDA 13",
    ], ["libcudnn.so.9", "cuDNN 9"]]
  ) {
    assert.ok(c.problems.some((p) => p.startsWith(`cannot load ${lib} (${name})`)), `${lib} in ${c.problems.join(" | ")}`);
  }
  assert.ok(!c.problems.some((p) => p.includes("libcudart")), "cudart loads");
  assert.ok(!c.problems.some((p) => /libc\.so|libstdc|ld-linux/.test(p)), "system libraries are never reported");
  const m = cudaError(RT, c, sys).message;
  assert.match(m, /nvidia-cublas nvidia-cuda-runtime nvidia-curand nvidia-cudnn-cu13/);
  assert.match(m, /site-packages\/nvidia\/ on LD_LIBRARY_PATH/);
});

Deno.test("cuda check: ready when the providers, every library and a GPU are there", () => {
  const c = checkCuda(RT, fakeSystem({ files: providersInPlace, loadable: everythingLoads }));
  assert.deepEqual(c.problems, []);
  assert.equal(c.ready, true);
  assert.ok(c.notes.some((n) => n.includes("libcudnn.so.9")));
});

Deno.test("cuda check: a driver without a device is reported as such", () => {
  const c = checkCuda(
    RT,
    fakeSystem({
      files: providersInPlace,
      loadable: everythingLoads,
      devices: "cuInit failed with CUDA driver error 100 (no CUDA-capable device)",
    }),
  );
  assert.equal(c.ready, false);
  assert.deepEqual(c.problems, [
    "the NVIDIA driver reports no usable GPU: cuInit failed with CUDA driver error 100 (no CUDA-capable device)",
  ]);
});

Deno.test("FORA_ORT_CUDA_DIR: links both provider files next to the core after checking the version", () => {
  const dir = "/srv/ort-gpu-1.29.0";
  const sys = fakeSystem({
    files: [join(dir, PROVIDER_SHARED), join(dir, PROVIDER_CUDA)],
    loadable: everythingLoads,
    env: { [CUDA_DIR_ENV]: dir },
    versionIn: { [join(dir, PROVIDER_CUDA)]: "1.29.0" },
  });
  const c = checkCuda(RT, sys, { link: true });
  assert.deepEqual(c.problems, []);
  assert.deepEqual(sys.links, [[join(dir, PROVIDER_SHARED), join(CORE, PROVIDER_SHARED)], [
    join(dir, PROVIDER_CUDA),
    join(CORE, PROVIDER_CUDA),
  ]]);
  assert.ok(c.notes.some((n) => n.startsWith(`linked ${join(CORE, PROVIDER_CUDA)} -> ${join(dir, PROVIDER_CUDA)}`)));
});

Deno.test("FORA_ORT_CUDA_DIR: a provider of another ONNX Runtime version is refused, nothing linked", () => {
  const dir = "/srv/ort-gpu-1.30.0";
  const sys = fakeSystem({
    files: [join(dir, PROVIDER_SHARED), join(dir, PROVIDER_CUDA)],
    loadable: everythingLoads,
    env: { [CUDA_DIR_ENV]: dir },
    versionIn: { [join(dir, PROVIDER_CUDA)]: "1.30.0" },
  });
  const c = checkCuda(RT, sys, { link: true });
  assert.equal(c.ready, false);
  assert.deepEqual(sys.links, []);
  assert.ok(c.problems.some((p) => p.includes(`${join(dir, PROVIDER_CUDA)} is not from ONNX Runtime 1.29.0`)));
});

Deno.test("FORA_ORT_CUDA_DIR: a folder without the files, and an unwritable core folder, say so", () => {
  const dir = "/srv/empty";
  const empty = checkCuda(RT, fakeSystem({ env: { [CUDA_DIR_ENV]: dir }, loadable: everythingLoads }), { link: true });
  assert.ok(empty.problems.some((p) => p === `${CUDA_DIR_ENV}=${dir} does not hold ${PROVIDER_SHARED} and ${PROVIDER_CUDA}`));

  const full = "/srv/ort";
  const ro = fakeSystem({
    files: [join(full, PROVIDER_SHARED), join(full, PROVIDER_CUDA)],
    loadable: everythingLoads,
    env: { [CUDA_DIR_ENV]: full },
    versionIn: { [join(full, PROVIDER_CUDA)]: "1.29.0" },
    symlinkFails: "Permission denied (os error 13)",
  });
  const c = checkCuda(RT, ro, { link: true });
  assert.equal(c.ready, false);
  assert.ok(
    c.problems.some((p) => p.startsWith(`cannot link ${join(CORE, PROVIDER_SHARED)} to ${join(full, PROVIDER_SHARED)}: Permission denied`)),
  );
  assert.ok(c.problems.some((p) => p.includes("copy the file there yourself")));
});

Deno.test("cuda check: fora's CUDA support is Linux x86-64 only", () => {
  const c = checkCuda(RT, fakeSystem({ platform: "darwin/aarch64" }));
  assert.deepEqual(c.problems, ["fora runs ONNX Runtime's CUDA execution provider on Linux x86-64 only; this is darwin/aarch64"]);
});

Deno.test("webgpu check: without the Vulkan loader the error names it and how to install it", async () => {
  const sys = fakeSystem();
  const c = checkWebGpu(RT, sys);
  assert.equal(c.ready, false);
  await assert.rejects(prepareDevice("webgpu", sys, RT), (e: ForaError) => {
    assert.equal(e.code, "runtime");
    assert.match(e.message, /^--device webgpu: ONNX Runtime 1\.29\.0's WebGPU execution provider \(Dawn over Vulkan\) cannot run here:/);
    assert.match(e.message, /the Vulkan loader libvulkan\.so\.1 cannot be loaded/);
    assert.match(e.message, /apt-get install libvulkan1/);
    assert.match(e.message, /VK_DRIVER_FILES/);
    return true;
  });
  const noEp = checkWebGpu({ ...RT, backends: [{ name: "cpu", bundled: true }] }, fakeSystem({ loadable: ["libvulkan.so.1"] }));
  assert.deepEqual(noEp.problems, ["this onnxruntime-node build (1.29.0) has no WebGPU execution provider"]);
});

Deno.test("session errors: Dawn's 'no adapter' becomes the WebGPU error; others keep ONNX Runtime's words", () => {
  const adapter = sessionLoadError(
    "webgpu",
    "/b/dit-full-cfg.fp16.onnx",
    new Error("webgpu_context.cc:136 ... Failed to get a WebGPU adapter: No supported adapters"),
  );
  assert.match(adapter.message, /^--device webgpu: .*cannot run here:\n {2}- Dawn found no GPU adapter/);
  const other = sessionLoadError("cpu", "/b/x.onnx", new Error("Protobuf parsing failed."));
  assert.equal(other.message, "ONNX Runtime cannot load /b/x.onnx on cpu: Protobuf parsing failed.");
});

Deno.test("auto: cuda when ready, else the CPU (WebGPU needs a loader, a GPU node and a working probe)", async () => {
  assert.equal(await resolveDevice("auto", fakeSystem({ files: providersInPlace, loadable: everythingLoads }), RT), "cuda");
  assert.equal(await resolveDevice("auto", fakeSystem(), RT), "cpu");
  // a Vulkan loader but no GPU device node: no probe session is even tried
  assert.equal(await resolveDevice("auto", fakeSystem({ loadable: ["libvulkan.so.1"] }), RT), "cpu");
  for (const d of ["cpu", "cuda", "webgpu"] as const) assert.equal(await resolveDevice(d, fakeSystem(), RT), d);
});

Deno.test("cuda major version comes from the provider's cudart", () => {
  assert.equal(cudaMajor(CUDA13_NEEDED), 13);
  assert.equal(cudaMajor(["libcudart.so.12", "libcublas.so.12"]), 12);
  assert.equal(cudaMajor(["libc.so.6"]), null);
});

// ---- this machine --------------------------------------------------------------------------------

Deno.test("this machine: the loaded ONNX Runtime, its core folder and its backends", () => {
  const rt = ortRuntime();
  assert.match(rt.version, /^\d+\.\d+\.\d+$/);
  assert.ok(systemProbe().isFile(join(rt.coreDir, "libonnxruntime.so.1")), rt.coreDir);
  assert.ok(rt.backends.some((b) => b.name === "cpu"));
  const report = describeDevices();
  assert.equal(report.coreDir, rt.coreDir);
  assert.equal(typeof report.cuda.ready, "boolean");
});

Deno.test("this machine: auto gives cpu where there is no NVIDIA driver, and cuda fails with the full message", async () => {
  const sys = systemProbe();
  if (sys.load("libcuda.so.1") === null) return; // a GPU machine: nothing to assert here
  if (sys.load("libvulkan.so.1") === null && sys.gpuNodes().length > 0) return; // WebGPU may be picked
  assert.equal(await resolveDevice("auto"), "cpu");
  await assert.rejects(prepareDevice("cuda", sys, ortRuntime()), (e: ForaError) => {
    assert.match(e.message, /no NVIDIA driver: libcuda\.so\.1 cannot be loaded/);
    return true;
  });
});

Deno.test("ELF reader: the DT_NEEDED of onnxruntime-node's own core library", () => {
  const needed = elfNeeded(join(ortRuntime().coreDir, "libonnxruntime.so.1"));
  assert.ok(needed && needed.includes("libc.so.6"), String(needed));
  assert.equal(elfNeeded(new URL("../../deno.json", import.meta.url).pathname), null);
});

Deno.test("string search: finds a NUL-terminated string across read windows", () => {
  const path = Deno.makeTempFileSync();
  try {
    const bytes = new Uint8Array(300);
    const text = new TextEncoder().encode("\x001.29.0\x00");
    bytes.set(text, 126); // straddles the 128-byte window boundary below
    Deno.writeFileSync(path, bytes);
    assert.equal(holdsString(path, "1.29.0", 128), true);
    assert.equal(holdsString(path, "1.29.0"), true);
    assert.equal(holdsString(path, "1.30.0", 128), false);
    assert.equal(holdsString(path, "1.29", 128), false, "the whole string, NUL to NUL");
    assert.equal(holdsString("/nonexistent/file", "1.29.0"), false);
  } finally {
    Deno.removeSync(path);
  }
});
