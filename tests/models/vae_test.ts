import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { ForaError } from "../../lib/errors.ts";
import type { ComputeType, GraphData } from "../../lib/onnx/builder.ts";
import { writeModel } from "../../lib/onnx/serialize.ts";
import { f32, type HostTensor, openSession } from "../../lib/runtime/session.ts";
import { loadCheckpoint, requireTensor } from "../../lib/weights/checkpoint.ts";
import { readTensorF32 } from "../../lib/weights/safetensors.ts";
import { type WeightSource, weightSource } from "../../lib/weights/source.ts";
import { loadVaeConfig, parseVaeConfig, upscaleFactor, type VaeConfig, vaePreset } from "../../lib/models/vae/config.ts";
import { buildVaeDecoderGraph, VAE_INPUT, VAE_OUTPUT, type VaeDecoderShape } from "../../lib/models/vae/graph.ts";
import { relErr } from "../kernels/vae_reference.ts";

const FIXTURE = new URL("../../fixtures/vae-tiny/", import.meta.url).pathname;
const WEIGHTS = "diffusion_pytorch_model.safetensors";

// ---- config -----------------------------------------------------------------------

Deno.test("the fixture's vae/config.json parses", async () => {
  const cfg = await loadVaeConfig(join(FIXTURE, "config.json"));
  assert.deepEqual(cfg, {
    blockOutChannels: [32, 64],
    layersPerBlock: 1,
    normNumGroups: 8,
    latentChannels: 4,
    outChannels: 3,
    scalingFactor: 0.18215,
    shiftFactor: 0,
    usePostQuantConv: true,
    midBlockAddAttention: true,
  });
  assert.equal(upscaleFactor(cfg), 2);
});

Deno.test("presets: sd-vae-ft-ema and -mse", () => {
  for (const name of ["sd-vae-ft-ema", "sd-vae-ft-mse"]) {
    const cfg = vaePreset(name);
    assert.deepEqual(cfg.blockOutChannels, [128, 256, 512, 512]);
    assert.equal(cfg.layersPerBlock, 2);
    assert.equal(cfg.normNumGroups, 32);
    assert.equal(cfg.latentChannels, 4);
    assert.equal(cfg.scalingFactor, 0.18215);
    assert.equal(upscaleFactor(cfg), 8);
  }
  assert.throws(() => vaePreset("sdxl-vae"), /unknown VAE preset "sdxl-vae"; use one of sd-vae-ft-ema, sd-vae-ft-mse/);
});

Deno.test("the real sd-vae-ft-mse config.json (no scaling_factor key) gets 0.18215", () => {
  const cfg = parseVaeConfig({
    _class_name: "AutoencoderKL",
    _diffusers_version: "0.4.2",
    act_fn: "silu",
    block_out_channels: [128, 256, 512, 512],
    down_block_types: Array(4).fill("DownEncoderBlock2D"),
    in_channels: 3,
    latent_channels: 4,
    layers_per_block: 2,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: 256,
    up_block_types: Array(4).fill("UpDecoderBlock2D"),
  }, "vae/config.json");
  assert.deepEqual(cfg, vaePreset("sd-vae-ft-mse"));
});

Deno.test("config errors are one-line bundle errors naming the key", () => {
  const base = { block_out_channels: [32, 64], layers_per_block: 1, norm_num_groups: 8, latent_channels: 4 };
  const bad: [unknown, RegExp][] = [
    [[1, 2], /expected a JSON object/],
    [{ ...base, block_out_channels: undefined }, /"block_out_channels" must be a non-empty list of positive integers, found undefined/],
    [{ ...base, block_out_channels: [32, "64"] }, /"block_out_channels" must be a non-empty list/],
    [{ ...base, layers_per_block: undefined }, /missing "layers_per_block"/],
    [{ ...base, latent_channels: 0 }, /"latent_channels" must be a positive integer, found 0/],
    [{ ...base, norm_num_groups: 7 }, /block_out_channels entry 32 is not divisible by norm_num_groups 7/],
    [{ ...base, scaling_factor: -1 }, /"scaling_factor" must be positive/],
    [{ ...base, scaling_factor: "0.18" }, /"scaling_factor" must be a number/],
    [{ ...base, _class_name: "AutoencoderTiny" }, /_class_name "AutoencoderTiny" is not supported/],
    [{ ...base, act_fn: "relu" }, /act_fn "relu" is not supported/],
    [{ ...base, up_block_types: ["UpDecoderBlock2D"] }, /"up_block_types" must list 2 blocks/],
    [{ ...base, up_block_types: ["UpDecoderBlock2D", "AttnUpDecoderBlock2D"] }, /"AttnUpDecoderBlock2D" is not supported/],
    [{ ...base, latents_mean: [0, 0, 0, 0] }, /"latents_mean"/],
    [{ ...base, mid_block_add_attention: "yes" }, /"mid_block_add_attention" must be true or false/],
  ];
  for (const [json, pattern] of bad) {
    assert.throws(() => parseVaeConfig(json, "vae/config.json"), (e: unknown) => {
      assert.ok(e instanceof ForaError, `expected ForaError, got ${e}`);
      assert.equal(e.code, "bundle");
      assert.ok(e.message.startsWith("vae/config.json: "), e.message);
      assert.ok(!e.message.includes("\n"));
      assert.match(e.message, pattern);
      return true;
    }, `no error for ${JSON.stringify(json)}`);
  }
});

Deno.test("loadVaeConfig reports a missing file and invalid JSON", async () => {
  await assert.rejects(() => loadVaeConfig("/nonexistent/vae/config.json"), /cannot read VAE config \(no such file\)/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "config.json"), "{ not json");
    await assert.rejects(() => loadVaeConfig(join(dir, "config.json")), (e: unknown) => {
      assert.ok(e instanceof ForaError && e.code === "bundle" && /not valid JSON/.test(e.message));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the decoder against the PyTorch golden ----------------------------------------

interface Bundle {
  dir: string;
  src: WeightSource;
  cfg: VaeConfig;
}

/** A temp folder holding (a hard link to, or a copy of) the fixture weights, as ORT requires. */
async function withBundle(fn: (b: Bundle) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fora-vae-" });
  try {
    try {
      await Deno.link(join(FIXTURE, WEIGHTS), join(dir, WEIGHTS));
    } catch {
      await Deno.copyFile(join(FIXTURE, WEIGHTS), join(dir, WEIGHTS));
    }
    const src = weightSource(await loadCheckpoint(dir), (f) => basename(f));
    await fn({ dir, src, cfg: await loadVaeConfig(join(FIXTURE, "config.json")) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function runIn(dir: string, graph: GraphData, latent: HostTensor): Promise<HostTensor> {
  const path = join(dir, `vae-${graph.inputs[0].shape[0]}-${crypto.randomUUID().slice(0, 8)}.onnx`);
  await writeModel(path, graph);
  const session = await openSession(path, { threads: 2 });
  try {
    return (await session.run({ [VAE_INPUT]: latent }))[VAE_OUTPUT];
  } finally {
    await session.release();
  }
}

async function golden(): Promise<{ z: HostTensor; image: HostTensor }> {
  const ckpt = await loadCheckpoint(join(FIXTURE, "golden.safetensors"));
  const z = requireTensor(ckpt, "z", [1, 4, 4, 4]);
  const image = requireTensor(ckpt, "image", [1, 3, 8, 8]);
  return { z: f32(z.shape, await readTensorF32(z)), image: f32(image.shape, await readTensorF32(image)) };
}

const TINY: VaeDecoderShape = { batch: 1, height: 4, width: 4 };

async function decode(b: Bundle, type: ComputeType, shape: VaeDecoderShape, z: HostTensor): Promise<HostTensor> {
  return await runIn(b.dir, buildVaeDecoderGraph(b.src, b.cfg, type, shape), z);
}

Deno.test("VAE decoder (float32) matches the PyTorch golden, float16 within 1e-2 of it", async () => {
  const { z, image } = await golden();
  await withBundle(async (b) => {
    const out32 = await decode(b, "float32", TINY, z);
    assert.deepEqual(out32.shape, [1, 3, 8, 8]);
    const e32 = relErr(out32.data as Float32Array, image.data as Float32Array);
    const out16 = await decode(b, "float16", TINY, z);
    const e16 = relErr(out16.data as Float32Array, out32.data as Float32Array);
    const e16g = relErr(out16.data as Float32Array, image.data as Float32Array);
    console.log(
      `VAE parity: float32 vs golden ${e32.toExponential(2)}, float16 vs float32 ${e16.toExponential(2)}, float16 vs golden ${
        e16g.toExponential(2)
      }`,
    );
    assert.ok(e32 <= 1e-4, `float32 relative error ${e32}`);
    assert.ok(e16 <= 1e-2, `float16 vs float32 relative error ${e16}`);
    assert.ok(e16g <= 1e-2, `float16 vs golden relative error ${e16g}`);
  });
});

Deno.test("VAE decoder with float16 GroupNorm statistics in float32 also matches", async () => {
  const { z, image } = await golden();
  await withBundle(async (b) => {
    const graph = buildVaeDecoderGraph(b.src, b.cfg, "float16", TINY, { groupNormFloat32Stats: true });
    const out = await runIn(b.dir, graph, z);
    const e = relErr(out.data as Float32Array, image.data as Float32Array);
    assert.ok(e <= 1e-2, `relative error ${e}`);
  });
});

Deno.test("VAE decoder with a dynamic batch decodes each latent as alone", async () => {
  const { z, image } = await golden();
  await withBundle(async (b) => {
    const n = z.data.length;
    const two = new Float32Array(2 * n);
    two.set(z.data as Float32Array);
    two.set((z.data as Float32Array).map((v) => -v), n);
    const graph = buildVaeDecoderGraph(b.src, b.cfg, "float32", { height: 4, width: 4 });
    assert.deepEqual(graph.inputs[0].shape, ["batch", 4, 4, 4]);
    const out = await runIn(b.dir, graph, f32([2, 4, 4, 4], two));
    assert.deepEqual(out.shape, [2, 3, 8, 8]);
    const m = image.data.length;
    const first = (out.data as Float32Array).slice(0, m);
    assert.ok(relErr(first, image.data as Float32Array) <= 1e-4);
    const second = await decode(b, "float32", TINY, f32([1, 4, 4, 4], two.slice(n)));
    assert.ok(relErr((out.data as Float32Array).slice(m), second.data as Float32Array) <= 1e-4);
  });
});

Deno.test("VAE decoder graph: node names carry the module path; float32 in and out for float16", async () => {
  await withBundle(async (b) => {
    const graph = buildVaeDecoderGraph(b.src, b.cfg, "float16", { batch: 1, height: 6, width: 5 });
    assert.deepEqual(graph.inputs, [{ name: "latent", dtype: "float32", shape: [1, 4, 6, 5] }]);
    assert.deepEqual(graph.outputs, [{ name: "image", dtype: "float32", shape: [1, 3, 12, 10] }]);
    const names = graph.nodes.map((n) => n.name);
    for (
      const prefix of [
        "scale_latent/",
        "post_quant_conv/Conv",
        "decoder/conv_in/Conv",
        "decoder/mid_block/resnets.0/norm1/",
        "decoder/mid_block/attentions.0/to_q/",
        "decoder/mid_block/resnets.1/conv2/Conv",
        "decoder/up_blocks.0/upsamplers.0/Resize",
        "decoder/up_blocks.0/upsamplers.0/conv/Conv",
        "decoder/up_blocks.1/resnets.0/conv_shortcut/Conv",
        "decoder/up_blocks.1/resnets.1/conv1/Conv",
        "decoder/conv_norm_out/",
        "decoder/conv_out/Conv",
      ]
    ) {
      assert.ok(names.some((n) => n.startsWith(prefix)), `no node named ${prefix}*`);
    }
    assert.ok(!names.some((n) => n.startsWith("decoder/up_blocks.1/upsamplers")), "the last up block has no upsampler");
    // Every fixture tensor is used, as an external reference (no copy).
    const ckpt = await loadCheckpoint(b.dir);
    assert.equal(graph.initializers.filter((i) => i.external).length, ckpt.tensors.size);
  });
});

Deno.test("VAE decoder: a config that does not fit the weights fails with the tensor's name", async () => {
  await withBundle((b) => {
    const wrong = { ...b.cfg, blockOutChannels: [32, 32] };
    assert.throws(() => buildVaeDecoderGraph(b.src, wrong, "float32", TINY), (e: unknown) => {
      assert.ok(e instanceof ForaError && e.code === "weights");
      assert.match(e.message, /decoder\.conv_in\.weight.*expected \[32, 4, 3, 3\]/);
      return true;
    });
    return Promise.resolve();
  });
});

Deno.test("the full sd-vae-ft-mse decoder builds at 256 px (shapes only, stand-in weights)", () => {
  // The SD VAE changes channels in two places: 512 -> 256 (up_blocks.2) and 256 -> 128 (up_blocks.3).
  const shortcuts = new Set(["decoder.up_blocks.2.resnets.0.conv_shortcut.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"]);
  const requested = new Map<string, number[]>();
  let offset = 0;
  const fake: WeightSource = {
    origin: "stand-in",
    has: (name) => name.endsWith(".to_q.weight") || /\.to_(q|k|v|out\.0)\.bias$/.test(name) || shortcuts.has(name),
    get(name, shape) {
      const s = shape ?? [512, 512];
      requested.set(name, s);
      const length = s.reduce((a, b) => a * b, 1) * 4;
      offset += length;
      return { name, location: WEIGHTS, offset: offset - length, length, dtype: "float32", shape: s };
    },
    rows: () => {
      throw new Error("unused");
    },
  };
  for (const type of ["float32", "float16"] as const) {
    requested.clear();
    const graph = buildVaeDecoderGraph(fake, vaePreset("sd-vae-ft-mse"), type, { batch: 1, height: 32, width: 32 });
    assert.deepEqual(graph.outputs[0].shape, [1, 3, 256, 256]);
    // post_quant_conv 2, conv_in 2, mid block 2x8 + 10, 4 up blocks x 3 resnets x 8, 2 shortcuts x 2,
    // 3 upsamplers x 2, conv_norm_out 2, conv_out 2.
    assert.equal(requested.size, 2 + 2 + 26 + 96 + 4 + 6 + 2 + 2);
    assert.deepEqual(requested.get("decoder.conv_in.weight"), [512, 4, 3, 3]);
    assert.deepEqual(requested.get("decoder.up_blocks.3.resnets.2.conv2.weight"), [128, 128, 3, 3]);
    assert.deepEqual(requested.get("decoder.up_blocks.2.resnets.0.conv_shortcut.weight"), [256, 512, 1, 1]);
    assert.deepEqual(requested.get("decoder.up_blocks.2.upsamplers.0.conv.weight"), [256, 256, 3, 3]);
    assert.ok(!requested.has("decoder.up_blocks.3.upsamplers.0.conv.weight"));
    assert.deepEqual(requested.get("decoder.conv_out.weight"), [3, 128, 3, 3]);
  }
});
