/**
 * `--device` through the real CLI (a subprocess, as `deno task fora` runs it) on the tiny test
 * bundle, and fp16 vs fp32 parity of a whole `fora generate` run.
 *
 * On this project's machines there is no GPU: `--device cuda` and `--device webgpu` must fail
 * before sampling with one ForaError (exit 1) that names what is missing; `auto` must pick the
 * CPU. Where a GPU setup is present those assertions are skipped, not faked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { readNpy } from "../../lib/io/npy.ts";
import { sessionLoadError } from "../../lib/runtime/devices.ts";
import { systemProbe } from "../../lib/runtime/machine.ts";
import { ForaError } from "../../lib/errors.ts";
import { TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { runFora } from "../cli/run.ts";
import { relError } from "../support.ts";

const WORK = await Deno.makeTempDir({ prefix: "fora-device-test-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

let bundle: Promise<string> | null = null;
function tinyBundle(): Promise<string> {
  bundle ??= (async () => {
    const dir = join(WORK, "tiny");
    const r = await runFora("convert", TINY_DIFFUSERS, dir, "-q");
    assert.equal(r.code, 0, r.stderr);
    return dir;
  })();
  return bundle;
}

const sys = systemProbe();
const noCudaDriver = sys.load("libcuda.so.1") !== null;
const noVulkan = sys.load("libvulkan.so.1") !== null;

Deno.test({
  name: "generate --device cuda without CUDA: exit 1, one error naming the provider files, the folder and the installs",
  ignore: !noCudaDriver,
  async fn() {
    const r = await runFora("generate", "-m", await tinyBundle(), "--steps", "4", "--device", "cuda", "-o", join(WORK, "o-cuda"), "--json");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: --device cuda: ONNX Runtime [\d.]+'s CUDA execution provider cannot run here:/);
    assert.match(r.stderr, /libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so/);
    assert.match(r.stderr, /only next to libonnxruntime\.so\.1, in \S+napi-v6\/linux\/x64/);
    assert.match(r.stderr, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.match(r.stderr, /FORA_ORT_CUDA_DIR/);
    assert.doesNotMatch(r.stderr, /provider_bridge_ort|internal error/, "ONNX Runtime was never asked: no log line of its own");
    assert.ok(!r.stdout.includes('"event":"step"'), "nothing was sampled");
  },
});

Deno.test({
  name: "generate --device webgpu without a Vulkan loader: exit 1, one error naming libvulkan.so.1",
  ignore: !noVulkan,
  async fn() {
    const r = await runFora(
      "generate",
      "-m",
      await tinyBundle(),
      "--steps",
      "4",
      "--device",
      "webgpu",
      "-o",
      join(WORK, "o-webgpu"),
      "--json",
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^error: --device webgpu: ONNX Runtime [\d.]+'s WebGPU execution provider \(Dawn over Vulkan\) cannot run here:/,
    );
    assert.match(r.stderr, /libvulkan\.so\.1 cannot be loaded/);
    assert.match(r.stderr, /apt-get install libvulkan1/);
  },
});

Deno.test({
  name: "onnxruntime-node's own WebGPU failure without Vulkan becomes the same clear ForaError",
  ignore: !noVulkan,
  async fn() {
    const model = join(await tinyBundle(), "dit-reuse-plain.fp32.onnx");
    let raw: unknown = null;
    try {
      await ort.InferenceSession.create(model, { executionProviders: ["webgpu"] });
    } catch (e) {
      raw = e;
    }
    assert.ok(raw instanceof Error, "the CPU package's WebGPU EP must fail without Vulkan");
    assert.match(raw.message, /WebGPU adapter/);
    const e = sessionLoadError("webgpu", model, raw);
    assert.ok(e instanceof ForaError);
    assert.match(e.message, /^--device webgpu: .*\n {2}- Dawn found no GPU adapter/);
  },
});

Deno.test("generate --device with an unknown name is a usage error (exit 2)", async () => {
  const r = await runFora("generate", "-m", await tinyBundle(), "--device", "tpu");
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--device.*tpu/);
});

Deno.test({
  name: "generate without --device picks the best available: the CPU here, recorded in run_start",
  ignore: !noCudaDriver,
  async fn() {
    const r = await runFora("generate", "-m", await tinyBundle(), "--steps", "4", "-o", join(WORK, "o-auto"), "--json");
    assert.equal(r.code, 0, r.stderr);
    const start = JSON.parse(r.stdout.split("\n")[0]);
    assert.equal(start.event, "run_start");
    assert.equal(start.flags.device, noVulkan || sys.gpuNodes().length === 0 ? "cpu" : start.flags.device);
  },
});

// ---- fp16 graphs, end to end ---------------------------------------------------------------------

/**
 * The same run with the fp16 graphs (half-precision compute, fused MultiHeadAttention, LayerNorm
 * statistics in fp32) and with the fp32 graphs: same seed, so the same noise at every step; the
 * final latents may differ only by half-precision rounding carried through the sampler.
 * Tolerance: max |fp16 - fp32| / max |fp32| <= 1e-2 (measured: about 4e-4 on this model).
 */
for (const [sampler, steps, n] of [["ddpm", 20, 3], ["ddim", 10, 1]] as const) {
  Deno.test(`generate --precision fp16 matches fp32 within 1e-2 (${sampler}, ${steps} steps, N=${n}, 2 samples with CFG)`, async () => {
    const dir = await tinyBundle();
    const latents: Float32Array[] = [];
    for (const precision of ["fp32", "fp16"]) {
      const npy = join(WORK, `x-${sampler}-${precision}.npy`);
      const r = await runFora(
        "generate",
        "-m",
        dir,
        "--class",
        "3",
        "--class",
        "7",
        "--sampler",
        sampler,
        "--steps",
        String(steps),
        "-N",
        String(n),
        "--precision",
        precision,
        "--device",
        "cpu",
        "-o",
        join(WORK, `o-${sampler}-${precision}`),
        "--latents-out",
        npy,
        "--json",
      );
      assert.equal(r.code, 0, r.stderr);
      const end = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
      assert.equal(end.status, "ok");
      const arr = await readNpy(npy);
      assert.deepEqual(arr.shape, [2, 4, 8, 8]);
      latents.push(arr.data as Float32Array);
    }
    const [x32, x16] = latents;
    assert.ok(x16.every(Number.isFinite));
    const err = relError(x16, x32);
    assert.ok(err <= 1e-2, `fp16 vs fp32 final latent: relative error ${err.toExponential(2)} > 1e-2`);
    assert.ok(err > 0, "the fp16 graphs really ran (bit-identical output would mean fp32 ran twice)");
  });
}
