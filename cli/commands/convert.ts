/** `fora convert SRC DST`: a DiT checkpoint folder in, a bundle out. */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { convertAnyBundle } from "../../lib/bundle/convert.ts";
import { bytes } from "../../lib/bundle/info.ts";
import { type Precision, PRECISIONS } from "../../lib/bundle/manifest.ts";
import { printLine } from "../../lib/events/output.ts";
import { stopOnSignals } from "../signals.ts";

export function convertCommand(): Command<
  [string, string],
  {
    force?: true;
    copyWeights?: true;
    precision: Precision[];
    numHeads?: number;
    t5?: string;
    vae?: string;
    imageSize?: number;
    quiet?: true;
  }
> {
  return new Command("convert")
    .summary("turn a DiT or PixArt-alpha checkpoint into a fora bundle")
    .description(
      "Turn a DiT checkpoint folder into a fora bundle: ONNX graphs for every step variant " +
        "(full / reuse / per-block, with and without classifier-free guidance, fp32 and fp16, and on request int8), " +
        "the weights (hard-linked into DST/weights/, copied only when linking is impossible), " +
        "and manifest.json, written last. Nothing is left at DST if conversion fails.",
    )
    .argument(
      "<src>",
      "model folder: a diffusers DiT pipeline (model_index.json, transformer/, optional vae/), " +
        "an original-format DiT (config.json + model.safetensors), or a diffusers PixArt-alpha pipeline " +
        "(transformer/, text_encoder/, tokenizer/ with spiece.model or tokenizer.json, vae/); or a checkpoint file as PyTorch " +
        "saves it: DiT (e.g. DiT-XL-2-256x256.pt) or PixArt-alpha (e.g. PixArt-XL-2-512x512.pth or -1024-MS.pth, with --t5)",
    )
    .argument("<dst>", "bundle folder to create; must not exist or be empty (see --force)")
    .option("--force", "replace DST even if it is not empty")
    .option("--copy-weights", "copy the weight files instead of hard-linking them to the source files")
    .addOption(
      new Option(
        "--precision <list>",
        "graph precisions to build, comma-separated: fp32 (CPU), fp16 (CUDA), int8 (CPU, DiT only: block linears quantized to int8)",
      )
        .default(["fp32", "fp16"] as Precision[], "fp32,fp16")
        .argParser(parsePrecisions),
    )
    .addOption(
      new Option("--num-heads <h>", "attention heads of a .pt checkpoint whose hidden size is none of DiT's published ones")
        .argParser(parseCount),
    )
    .option("--t5 <dir>", "with a PixArt-alpha .pth: the T5 v1.1 encoder's folder (config.json, tokenizer.json, weights)")
    .option("--vae <dir>", "with a .pt or .pth: the VAE's folder (diffusers AutoencoderKL: config.json, weights)")
    .addOption(
      new Option(
        "--image-size <px>",
        "with a PixArt-alpha .pth: the image size it was trained at, in pixels; needed when the file has no pos_embed " +
          "and its name does not say it (256x256, 512x512, 1024-MS)",
      ).argParser(parseCount),
    )
    .option("-q, --quiet", "print no progress lines")
    .addHelpText(
      "after",
      `
Examples:
  fora convert fixtures/dit-tiny/diffusers /tmp/tiny-bundle
  fora convert DiT-XL-2-256x256.pt ./bundles/dit-xl-256 --vae ./sd-vae-ft-ema
  fora convert PixArt-XL-2-512x512.pth ./bundles/pixart-512 --t5 ./t5-v1_1-xxl --vae ./sd-vae-ft-ema
  fora convert PixArt-XL-2-1024-MS.pth ./bundles/pixart-1024 --t5 ./t5-v1_1-xxl --vae ./sd-vae-ft-ema
  fora convert ./DiT-XL-2-256 ./bundles/dit-xl --precision fp16
  fora convert ./DiT-XL-2-256 ./bundles/dit-xl-cpu --precision fp32,int8
  fora convert fixtures/pixart-tiny/diffusers /tmp/pixart-tiny --precision fp32

An original-format config.json holds: depth, hidden_size, num_heads, patch_size,
input_size, in_channels, num_classes, learn_sigma. Add "space": "pixel" for a model
trained on pixels (no VAE). Weights in a folder must be .safetensors. A checkpoint
file as torch.save writes it (.pt, .pth; T5 and VAE folders may hold .bin files too) is
read without running any of its code: the architecture comes from the tensor shapes, a
training checkpoint's "ema" weights are used, and the bundle holds them as safetensors.

Then: fora info DST`,
    )
    .action(async (src, dst, opts) => {
      const log = opts.quiet ? undefined : (line: string) => console.error(line);
      const stop = stopOnSignals();
      const r = await convertAnyBundle(src, dst, {
        force: opts.force,
        copyWeights: opts.copyWeights,
        precisions: opts.precision,
        numHeads: opts.numHeads,
        textEncoder: opts.t5,
        vae: opts.vae,
        imageSize: opts.imageSize,
        log,
        signal: stop.signal,
      }).finally(stop.dispose);
      const total = r.manifest.files.reduce((n, f) => n + f.size, 0);
      printLine(`bundle written to ${r.dir} (${r.manifest.files.length + 1} files, ${bytes(total)}); see: fora info ${dst}`);
    });
}

function parsePrecisions(value: string): Precision[] {
  const list = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const p of list) {
    if (!PRECISIONS.includes(p as Precision)) {
      throw new InvalidArgumentError(`"${p}" is not a precision; use a comma-separated list of ${PRECISIONS.join(", ")}, e.g. fp32,fp16`);
    }
  }
  if (list.length === 0) throw new InvalidArgumentError(`give one or more of ${PRECISIONS.join(", ")}, e.g. fp32,fp16`);
  return list as Precision[];
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`"${value}" is not a positive whole number`);
  }
  return n;
}
