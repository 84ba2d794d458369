/** `fora generate`: sample images from a DiT bundle with FORA caching. */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { ForaError } from "../../lib/errors.ts";
import { generate } from "../../lib/generate.ts";
import { readManifest } from "../../lib/bundle/manifest.ts";
import { defaultSteps, isSamplerName, samplerNames } from "../../lib/samplers/mod.ts";
import { chooseSink } from "../../lib/events/sink.ts";
import { stopOnSignals } from "../signals.ts";

export function generateCommand() {
  return new Command("generate")
    .summary("sample images from a DiT bundle with FORA caching")
    .description(
      "Sample class-conditional images from a bundle made by `fora convert`, with FORA feature " +
        "caching: the model runs in full every N steps and reuses its cached attention and MLP " +
        "outputs in between. Writes one PNG per sample. Progress goes to stderr on a terminal; " +
        "with --json (or when stdout is not a terminal) one NDJSON event per line goes to stdout " +
        "(schema: lib/events/schema.json).",
    )
    .requiredOption("-m, --model <bundle>", "bundle folder (from fora convert)")
    .addOption(
      new Option("-c, --class <id|name>", "class of a sample, by id or by the model's class name; repeat for several samples")
        .argParser(collect).default([] as string[], "0"),
    )
    .addOption(new Option("--sampler <name>", `sampler: ${samplerNames.join(", ")}`).default("ddpm"))
    .option("--steps <n>", "sampling steps (default: ddpm 250, ddim 50, dpm-solver++ 20, iddpm 100)", parseIntArg("--steps"))
    .option("--cfg <scale>", "classifier-free guidance scale; 1 disables guidance (and halves the work). The paper's FID protocol uses 1.5", parseCfg, 4)
    .addOption(new Option("--cfg-channels <which>", "guided channels: ref (DiT's reference: eps channels 0..2) or all (diffusers)").choices(["ref", "all"] as const).default("ref" as const))
    .option("--seed <n>", "run seed (0 .. 2^53-1); sample i uses a generator derived from it and i", parseSeed, 0)
    .option("-N, --cache-interval <n>", "FORA interval N: full step when i == S-1 or i % N == 0 (i counts down); 1 disables caching", parseIntArg("--cache-interval"), 3)
    .option("--batch <n>", "samples per run; the --class list repeats to fill it", parseIntArg("--batch"))
    .option("-o, --out <dir|file.png>", "output folder, or a .png file name", "out")
    .option("--grid", "also write a grid of all samples")
    .option("--json", "NDJSON events on stdout (default when stdout is not a terminal)")
    .option("--latents-in <file.npy>", "start from this initial latent [batch, C, H, W] instead of seeded noise")
    .option("--latents-out <file.npy>", "write the final latent (before decoding)")
    .addOption(new Option("--precision <p>", "graph precision: fp32 (CPU) or fp16").choices(["fp32", "fp16"] as const).default("fp32" as const))
    .option("--threads <n>", "ONNX Runtime intra-op threads (default: all cores)", parseIntArg("--threads"))
    .addHelpText(
      "after",
      `
Examples:
  fora generate -m /tmp/tiny-bundle --class 3 --class 7 --steps 50 -N 3
  fora generate -m bundle --sampler ddim --steps 50 --cfg 1.5 --json | jq -c 'select(.event=="run_end")'

N=3 is FORA's recommended trade-off (the paper: 2.80x faster than N=1 on DiT-XL/2).`,
    )
    .action(async (opts) => {
      if (!isSamplerName(opts.sampler)) {
        throw new ForaError("usage", `--sampler "${opts.sampler}" is unknown; use one of ${samplerNames.join(", ")}`);
      }
      const steps = opts.steps ?? defaultSteps[opts.sampler];
      if (opts.cacheInterval > steps) {
        throw new ForaError("usage", `--cache-interval ${opts.cacheInterval} is larger than --steps ${steps}; use 1..${steps}`);
      }
      const manifest = await readManifest(opts.model);
      const classes = resolveClasses(opts.class.length ? opts.class : ["0"], opts.batch, manifest.dit.config.numClasses, manifest.dit.classNames);
      const sink = chooseSink({
        json: opts.json ?? false,
        stdoutIsTerminal: Deno.stdout.isTerminal(),
        stderrIsTerminal: Deno.stderr.isTerminal(),
      });
      const stop = stopOnSignals();
      try {
        await generate({
          model: opts.model,
          classes,
          sampler: opts.sampler,
          steps,
          cfg: opts.cfg,
          cfgChannels: opts.cfgChannels,
          seed: opts.seed,
          cacheInterval: opts.cacheInterval,
          out: opts.out,
          grid: opts.grid ?? false,
          latentsIn: opts.latentsIn,
          latentsOut: opts.latentsOut,
          precision: opts.precision,
          threads: opts.threads,
          signal: stop.signal,
        }, sink.emit);
      } finally {
        stop.dispose();
        sink.close();
      }
    });
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

function parseIntArg(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${flag} must be a whole number >= 1, got "${value}"`);
    }
    return n;
  };
}

function parseCfg(value: string): number {
  const s = Number(value);
  if (value.trim() === "" || !Number.isFinite(s) || s < 1) {
    throw new InvalidArgumentError(`"${value}" is not a guidance scale: use a number >= 1 (1 disables guidance)`);
  }
  return s;
}

function parseSeed(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`"${value}" is not a seed: use a whole number from 0 to 2^53-1`);
  }
  return n;
}
