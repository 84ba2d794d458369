/**
 * The memory plan of PixArt sampling on the CPU (lib/models/pixart/memory.ts) at the published
 * models' sizes: PixArt-XL-2-1024-MS with T5-XXL fits a 24 GiB machine only with the encoder
 * closed after each prompt; fp16 files (which the CPU EP holds at nearly twice their fp32 size)
 * are refused before loading with the size they need; and closing the encoder after each prompt
 * gives the same caption features as keeping it open.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { pixartPreset } from "../../lib/models/pixart/config.ts";
import { estimatePixartMemory, type MemoryInputs, pixartParameters, planPixartMemory } from "../../lib/models/pixart/memory.ts";
import { parseT5Config, T5_V1_1_XXL, t5Parameters } from "../../lib/models/t5/config.ts";
import { vaePreset } from "../../lib/models/vae/config.ts";
import { buildT5EncoderGraph } from "../../lib/models/t5/graph.ts";
import { writeModel } from "../../lib/onnx/serialize.ts";
import { openPromptEncoder } from "../../lib/text/encoder.ts";
import { loadT5Tokenizer } from "../../lib/text/tokenizer.ts";
import { FIXTURES, tempBundle } from "../support.ts";

const GiB = 2 ** 30;

function published(preset: string, t5Dtype: string, transformerDtype = "F32"): MemoryInputs {
  const config = pixartPreset(preset);
  return {
    transformer: { config, weights: { parameters: pixartParameters(config), dtypes: [transformerDtype] } },
    t5: { config: T5_V1_1_XXL, weights: { parameters: t5Parameters(T5_V1_1_XXL), dtypes: [t5Dtype] } },
    // sd-vae-ft-ema: encoder and decoder in one file
    vae: { config: vaePreset("sd-vae-ft-mse"), weights: { parameters: 83_653_863, dtypes: ["F32"] } },
    batch: 1,
    captionTokens: 120,
  };
}

Deno.test("PixArt-XL-2-1024-MS with T5-XXL (fp32 files) fits 24 GiB with the encoder closed after each prompt, not with it kept open", () => {
  const m = published("XL/2-1024-MS", "F32");
  const e = estimatePixartMemory(m);
  assert.ok(e.together > 24 * GiB, `kept open: ${e.together / GiB} GiB`);
  const plan = planPixartMemory("model", m, 24 * GiB);
  assert.equal(plan.releaseEncoder, true);
  assert.ok(plan.bytes <= 24 * GiB && plan.bytes > 18 * GiB, `${plan.bytes / GiB} GiB`);
  assert.equal(planPixartMemory("model", m, 64 * GiB).releaseEncoder, false, "a 64 GiB machine keeps it open");
  assert.equal(planPixartMemory("model", published("XL/2-512", "F32"), 64 * GiB).releaseEncoder, false);
});

Deno.test("a configuration that cannot fit is refused before loading, in one line naming the size it needs", () => {
  const m = published("XL/2-1024-MS", "F16");
  assert.throws(() => planPixartMemory("/models/pixart-1024", m, 24 * GiB), (e: Error) => {
    assert.match(
      e.message,
      /^\/models\/pixart-1024: sampling a batch of 1 needs about \d+\.\d GiB of memory on the CPU \(T5 encoder \d+\.\d GiB, transformer \d+\.\d GiB, VAE decoder \d+\.\d GiB, working memory \d+\.\d GiB, runtime 0\.4 GiB\) but this machine has 24\.0 GiB; fp16 weights take about twice/,
    );
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  // the working memory grows with the batch: a batch that does not fit is refused even when one sample fits
  assert.throws(() => planPixartMemory("m", { ...published("XL/2-1024-MS", "F32"), batch: 8 }, 24 * GiB), /a batch of 8 needs about/);
});

Deno.test("the estimate follows the sampled size (--width / --height): a 4096 x 1024 image's full step is refused, a 1344 x 768 bin costs about the trained size", () => {
  const m = published("XL/2-1024-MS", "F32");
  const trained = estimatePixartMemory(m).phased;
  const bin = estimatePixartMemory({ ...m, latent: { height: 96, width: 168 } }).phased;
  assert.ok(Math.abs(bin - trained) < 0.1 * trained, `bin ${bin / GiB} GiB, trained ${trained / GiB} GiB`);
  assert.throws(() => planPixartMemory("m", { ...m, latent: { height: 128, width: 512 } }, 24 * GiB), /needs about \d+\.\d GiB/);
});

Deno.test("the T5 encoder closed after each prompt gives the same caption features as kept open", async () => {
  const dir = join(FIXTURES, "pixart-tiny", "diffusers");
  const bundle = await tempBundle(join(dir, "text_encoder"));
  try {
    const cfg = parseT5Config(JSON.parse(await Deno.readTextFile(join(dir, "text_encoder", "config.json"))), "config.json");
    const graph = join(bundle.dir, "t5.onnx");
    await writeModel(graph, buildT5EncoderGraph(bundle.src, cfg, "float32"));
    const tokenizer = await loadT5Tokenizer(join(dir, "tokenizer"));
    const encode = async (closeAfterEach: boolean) => {
      const enc = openPromptEncoder({
        graph,
        tokenizer,
        dModel: cfg.dModel,
        maxTokens: 120,
        clean: false,
        encoderId: "t",
        threads: 1,
        closeAfterEach,
      });
      const out = [await enc.encode("a red fox"), await enc.encode("A small cactus in the desert."), await enc.encode("")];
      await enc.release();
      return out.map((o) => Array.from(o.features));
    };
    assert.deepEqual(await encode(true), await encode(false));
  } finally {
    await bundle.cleanup();
  }
});
