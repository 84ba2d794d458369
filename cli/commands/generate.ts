/** `fora generate`: sample images from a DiT bundle with FORA caching. */
import { Command, Option } from "@commander-js/extra-typings";
import { ForaError } from "../../lib/errors.ts";
import { MAX_BATCH } from "../../lib/sample/plan.ts";
import { generate } from "../../lib/generate.ts";
import { resolveRun, type RunSettings } from "../../lib/resolve.ts";
import { floatPrecision } from "../../lib/bundle/manifest.ts";
import { latentOf, type SizedGraphs, sizedGraphs, sizeStep, trainedPixels } from "../../lib/models/pixart/sizes.ts";
import { binnedSize } from "../../lib/models/pixart/bins.ts";
import { chooseSink } from "../../lib/events/sink.ts";
import { checkLatentsOut } from "../../lib/io/latents_out.ts";
import { readListFile } from "../../lib/io/list_file.ts";
import { classValues, splitClassList } from "../class_list.ts";
import { stopOnSignals } from "../signals.ts";
import {
  cfgChannelsOption,
  cfgOption,
  deviceOption,
  givenFlags,
  modelOption,
  pathArg,
  positiveInt,
  precisionOption,
  samplerOption,
  seedOption,
  stepsOption,
  threadsOption,
  withCacheOptions,
} from "../sampling_options.ts";

export function generateCommand() {
  const command = withCacheOptions(
    new Command("generate")
      .summary("sample images from a DiT or PixArt-alpha bundle with FORA caching")
      .description(
        "Sample class-conditional images from a bundle made by `fora convert`, with FORA feature " +
          "caching: the model runs in full every N steps and reuses its cached attention and MLP " +
          "outputs in between. Writes one PNG per sample. Progress goes to stderr on a terminal; " +
          "with --json (or when stdout is not a terminal) one NDJSON event per line goes to stdout " +
          "(schema: lib/events/schema.json).",
      )
      .addOption(modelOption())
      .addOption(
        new Option("-c, --class <id|name>", "class of a sample, by id or by the model's class name; repeat, or list: 3,7,sandal")
          .argParser(collect).default([] as string[], "0"),
      )
      .option("--class-file <file>", "classes from FILE, one id or name per line (for more than a command line holds)")
      .addOption(samplerOption())
      .addOption(stepsOption())
      .addOption(cfgOption())
      .addOption(cfgChannelsOption())
      .addOption(seedOption()),
  );
  return command
    .addOption(
      new Option("-p, --prompt <text>", "text prompt of a sample (PixArt-alpha bundles); repeat for several samples").argParser(collect)
        .default([] as string[]),
    )
    .option("--prompt-file <file>", "PixArt: prompts from FILE, one per line (for more than a command line holds)")
    .option("--no-clean-caption", "PixArt: do not clean prompts as the reference does (they are still lower-cased and stripped)")
    .addOption(
      new Option(
        "--cache-cross-attn <on|off>",
        "PixArt: cache cross-attention outputs like self-attention (on), or recompute them on reuse steps (off)",
      )
        .choices(["on", "off"] as const).default("on" as const),
    )
    .option("--embeddings-cache <dir>", "PixArt: keep each prompt's T5 output in DIR, so the text encoder runs once per prompt across runs")
    .option(
      "--width <px>",
      "PixArt: image width (default: the model's trained size; without binning a multiple of the VAE factor x the patch size)",
      positiveInt("--width"),
    )
    .option("--height <px>", "PixArt: image height (as --width)", positiveInt("--height"))
    .option(
      "--no-resolution-binning",
      "PixArt: sample at exactly --width x --height, instead of at the nearest of the model's aspect-ratio bins and resizing to it",
    )
    .option("--batch <n>", "samples per run; the --class (or --prompt) list repeats to fill it", positiveInt("--batch", MAX_BATCH))
    .option("-o, --out <dir|file.png>", "output folder, or a .png file name", pathArg("--out"), "out")
    .option("--grid", "also write a grid of all samples")
    .option("--json", "NDJSON events on stdout (default when stdout is not a terminal)")
    .option("--latents-in <file.npy>", "start from this initial latent [batch, C, H, W] instead of seeded noise", pathArg("--latents-in"))
    .option("--latents-out <file.npy>", "write the final latent (before decoding)", pathArg("--latents-out"))
    .addOption(precisionOption())
    .addOption(threadsOption())
    .addOption(deviceOption())
    .addHelpText(
      "after",
      `
Examples:
  fora generate -m /tmp/tiny-bundle --class 3 --class 7 --steps 50 -N 3
  fora generate -m bundle --sampler ddim --steps 50 --cfg 1.5 --json | jq -c 'select(.event=="run_end")'
  fora generate -m pixart-bundle --prompt "a small cactus with a happy face" -N 2
  fora generate -m pixart-bundle --prompt "a lighthouse at dusk" --width 1920 --height 1080

PixArt-alpha bundles take --prompt instead of --class and default to DPM-Solver++
(20 steps), --cfg 4.5 and --cfg-channels all, as PixArt's pipeline does.
--width/--height pick another size: sampled at the nearest of the model's aspect-ratio
bins and resized to the request (--no-resolution-binning: at exactly that size); the
graphs for a new size are built on its first run and kept (README "PixArt").

N=3 is FORA's recommended trade-off (the paper: 2.80x faster than N=1 on DiT-XL/2).

Cache policies (--policy; README "Cache policies" compares them):
  static    full every N steps (-N), reuse in between: FORA itself
  schedule  the full/reuse plan of a --schedule file
  dynamic   each step reuses while the input has changed little since the last full
            step (--threshold X, higher = faster); a full step prepares at most
            --lookahead K reuse steps
  partial   static, but the last --compute-last B (or first --compute-first B)
            blocks run on every step
  forecast  static, but reuse steps extrapolate the cached features linearly from
            the last two full steps (TaylorSeer, order 1)
  Any policy takes --warmup W (first W steps full), --cooldown C (last C steps full)
  and --max-reuse M (at most M reuse steps in a row). Examples:
    fora generate --policy dynamic --threshold 0.1 --warmup 2 --max-reuse 4
    fora generate --policy partial -N 3 --compute-last 2
    fora generate --policy forecast -N 4 --cooldown 2`,
    )
    .action(async (opts, cmd) => {
      opts.class = await classValues(opts.class, opts.classFile);
      if (opts.promptFile) opts.prompt = [...opts.prompt, ...await readListFile("--prompt-file", opts.promptFile)];
      const run = await resolveRun({ ...opts, given: givenFlags(cmd) }, { family: "any" });
      const manifest = run.manifest;
      if (manifest.architecture === "pixart") {
        if (opts.class.length) {
          throw new ForaError("usage", "--class is for class-conditional models; this PixArt-alpha bundle takes --prompt TEXT");
        }
        if (!opts.prompt.length) throw new ForaError("usage", "this PixArt-alpha bundle needs --prompt TEXT (repeat for several samples)");
      } else if (opts.prompt.length) {
        throw new ForaError("usage", "--prompt needs a PixArt-alpha bundle; this bundle is class-conditional (use --class)");
      }
      const sized = await runSize(run, opts.width, opts.height, opts.resolutionBinning);
      if (opts.latentsOut) await checkLatentsOut(opts.latentsOut, run.model);
      const classNames = manifest.architecture === "dit" ? manifest.dit.classNames : null;
      const classList = opts.class.length ? splitClassList(opts.class, classNames) : ["0"];
      const classes = manifest.architecture === "dit"
        ? resolveClasses(classList, opts.batch, manifest.dit.config.numClasses, manifest.dit.classNames)
        : [];
      const prompts = manifest.architecture === "pixart"
        ? Array.from({ length: opts.batch ?? opts.prompt.length }, (_, i) => opts.prompt[i % opts.prompt.length])
        : undefined;
      const sink = chooseSink({
        json: opts.json ?? false,
        stdoutIsTerminal: Deno.stdout.isTerminal(),
        stderrIsTerminal: Deno.stderr.isTerminal(),
      });
      const stop = stopOnSignals();
      try {
        await generate({
          ...run,
          classes,
          prompts,
          cleanCaption: opts.cleanCaption,
          cacheCrossAttention: opts.cacheCrossAttn === "on",
          embeddingsCache: opts.embeddingsCache,
          sized,
          seed: opts.seed,
          schedule: opts.schedule,
          out: opts.out,
          grid: opts.grid ?? false,
          latentsIn: opts.latentsIn,
          latentsOut: opts.latentsOut,
          signal: stop.signal,
        }, sink.emit);
      } finally {
        stop.dispose();
        sink.close();
      }
    });
}

/**
 * A PixArt run at --width x --height: with binning, sampled at the nearest aspect-ratio bin and
 * resized to the request (lib/models/pixart/bins.ts); the sampled size's graphs found or built.
 */
async function runSize(
  run: RunSettings,
  width: number | undefined,
  height: number | undefined,
  binning: boolean,
): Promise<SizedGraphs | undefined> {
  const m = run.manifest;
  if (m.architecture !== "pixart") {
    if (width !== undefined || height !== undefined) {
      throw new ForaError("usage", "--width and --height are for PixArt bundles; this DiT bundle samples at its trained size only");
    }
    return undefined;
  }
  const trained = trainedPixels(m);
  const request = { width: width ?? trained.width, height: height ?? trained.height };
  const sampled = binning ? binnedSize(request.width, request.height, trained.width, sizeStep(m)) : request;
  const latent = latentOf(m, sampled.width, sampled.height);
  const want = { precision: floatPrecision(run.precision), guidance: run.cfg !== 1 ? "cfg" as const : "plain" as const };
  return { ...await sizedGraphs(run.model, m, latent, want, (line) => console.error(line)), output: request };
}

function resolveClasses(list: string[], batch: number | undefined, numClasses: number, names: string[] | null): number[] {
  const ids = list.map((c) => classId(c, numClasses, names));
  const n = batch ?? ids.length;
  return Array.from({ length: n }, (_, i) => ids[i % ids.length]);
}

/** A class given by id ("3") or by name ("sandal", case-insensitive). */
export function classId(value: string, numClasses: number, names: string[] | null): number {
  if (/^\d+$/.test(value)) {
    const id = Number(value);
    if (id >= numClasses) throw new ForaError("usage", `--class ${value} is out of range: this model has classes 0..${numClasses - 1}`);
    return id;
  }
  const id = names?.findIndex((n) => n.toLowerCase() === value.trim().toLowerCase()) ?? -1;
  if (id < 0) {
    const known = names ? `one of: ${names.join(", ")}` : "a class id (this model has no class names)";
    throw new ForaError("usage", `--class "${value}" is not a class of this model; use 0..${numClasses - 1} or ${known}`);
  }
  return id;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
