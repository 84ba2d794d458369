/**
 * The options every sampling command shares (generate, eval, sample, profile, ...): typed
 * commander Options and their parsers. One definition, so the commands agree on names and
 * defaults; lib/resolve.ts turns the parsed values into a run.
 */
import { type Command, type CommandUnknownOpts, InvalidArgumentError, Option, type OptionValues } from "@commander-js/extra-typings";
import { DEFAULT_MODEL } from "../lib/defaults.ts";
import { samplerNames } from "../lib/samplers/mod.ts";
import { TRAIN_TIMESTEPS } from "../lib/samplers/schedule.ts";
import { POLICY_DEFAULTS, POLICY_NAMES, type PolicyName } from "../lib/fora/policy.ts";
import { type Precision, PRECISIONS } from "../lib/bundle/manifest.ts";
import { DEVICE_CHOICES, type DeviceChoice } from "../lib/runtime/devices.ts";

export const modelOption = () =>
  new Option("-m, --model <bundle>", "bundle folder (from fora convert)").default(DEFAULT_MODEL, "the shipped Fashion-MNIST DiT");
export const samplerOption = () => new Option("--sampler <name>", `sampler: ${samplerNames.join(", ")}`).default("ddpm");
export const stepsOption = () =>
  new Option("--steps <n>", `sampling steps, 1 to ${TRAIN_TIMESTEPS} (default: ddpm 250, ddim 50, dpm-solver++ 20, iddpm 100)`)
    .argParser(positiveInt("--steps", TRAIN_TIMESTEPS, `the models are trained on ${TRAIN_TIMESTEPS} timesteps`));
export const cfgOption = () =>
  new Option(
    "--cfg <scale>",
    "classifier-free guidance scale; 1 disables guidance (and halves the work). The paper's FID protocol uses 1.5",
  )
    .argParser(parseCfg).default(4);
export const cfgChannelsOption = () =>
  new Option("--cfg-channels <which>", "guided channels: ref (DiT's reference: eps channels 0..2) or all (diffusers)")
    .choices(["ref", "all"] as const).default("ref" as const);
export const seedOption = () =>
  new Option("--seed <n>", "run seed (0 .. 2^53-1); sample i uses a generator derived from it and i").argParser(parseSeed).default(0);
export const intervalOption = () =>
  new Option("-N, --cache-interval <n>", "FORA interval N: full step when i == S-1 or i % N == 0 (i counts down); 1 disables caching")
    .argParser(positiveInt("--cache-interval")).default(POLICY_DEFAULTS.interval);
export const scheduleOption = () =>
  new Option("--schedule <file.json>", "run this recompute schedule (from fora similarity --suggest-schedule) instead of -N")
    .argParser(pathArg("--schedule")).conflicts("cacheInterval");
export const precisionOption = () =>
  new Option("--precision <p>", "graph precision: fp32 (CPU), fp16 (CUDA), or int8 (CPU; DiT bundles converted with --precision int8)")
    .choices(PRECISIONS).default("fp32" as Precision);
export const deviceOption = () =>
  new Option("--device <name>", "execution provider: cpu, cuda, webgpu, or auto (the best available: cuda, then webgpu, then cpu)")
    .choices(DEVICE_CHOICES).default("auto" as DeviceChoice);
/**
 * ONNX Runtime starts every intra-op thread when a session opens, each with its own stack:
 * 100000 of them exhaust the machine before the first step. 256 is above the core count of
 * any machine fora runs on, and fixed, so a command line means the same everywhere.
 */
export const MAX_THREADS = 256;
export const threadsOption = () =>
  new Option("--threads <n>", `ONNX Runtime intra-op threads, 1 to ${MAX_THREADS} (default: all cores)`)
    .argParser(positiveInt("--threads", MAX_THREADS, "more threads than cores only slow a run down"));

/**
 * A parser of a count flag: a whole number >= 1, and at most `max` where one is given, so that
 * no count a user can type allocates, spawns or loops without bound (`why` says where the
 * bound comes from).
 */
export function positiveInt(flag: string, max?: number, why?: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || !Number.isSafeInteger(n) || (max !== undefined && n > max)) {
      const range = max === undefined ? ">= 1" : `from 1 to ${max}${why ? ` (${why})` : ""}`;
      throw new InvalidArgumentError(`${flag} must be a whole number ${range}, got "${value}"`);
    }
    return n;
  };
}

/** The largest finite float32: the graphs take the guidance scale as one, so a larger scale would be infinity. */
export const MAX_CFG = 3.4028234663852886e38;

/** A parser of a path flag: an empty value names no file (`-o ""` from an unset shell variable) and is a usage error. */
export function pathArg(flag: string) {
  return (value: string): string => {
    if (value === "") throw new InvalidArgumentError(`${flag} needs a path; "" names no file or folder`);
    return value;
  };
}

export function parseCfg(value: string): number {
  const s = Number(value);
  if (value.trim() === "" || !Number.isFinite(s) || s < 1) {
    throw new InvalidArgumentError(`"${value}" is not a guidance scale: use a number >= 1 (1 disables guidance)`);
  }
  if (s > MAX_CFG) {
    throw new InvalidArgumentError(`"${value}" is beyond float32: use a number >= 1 and at most 3.4e38 (real scales are 1 .. 20)`);
  }
  return s;
}

export function parseSeed(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`"${value}" is not a seed: use a whole number from 0 to 2^53-1`);
  }
  return n;
}

// ---- cache policies (lib/fora/policy.ts) ----------------------------------------

export const policyOption = () =>
  new Option(
    "--policy <name>",
    "cache policy: static (FORA: full every N steps), schedule (a --schedule file), dynamic (decide each step " +
      "from how much the model's input changed), partial (static, but the last --compute-last or first --compute-first " +
      "blocks run every step), " +
      "forecast (static, reuse steps extrapolate from the last two full steps)",
  ).choices(POLICY_NAMES).default("static" as PolicyName);
export const thresholdOption = () =>
  new Option(
    "--threshold <x>",
    `dynamic: reuse while the summed relative L1 change of block 0's modulated input since the last full step stays below X; ` +
      `larger is faster and coarser, 0 never reuses (default ${POLICY_DEFAULTS.threshold})`,
  ).argParser(parseThreshold);
export const lookaheadOption = () =>
  new Option(
    "--lookahead <k>",
    `dynamic: a full step prepares residuals for up to K following steps, so at most K reuse steps follow it; ` +
      `a larger K costs more per full step (default: --max-reuse, else ${POLICY_DEFAULTS.lookahead})`,
  ).argParser(positiveInt("--lookahead"));
export const computeLastOption = () =>
  new Option(
    "--compute-last <b>",
    `partial: blocks at the end of the model computed on every step, 1 .. depth-1 (default ${POLICY_DEFAULTS.computeLast})`,
  )
    .argParser(positiveInt("--compute-last")).conflicts("computeFirst");
export const computeFirstOption = () =>
  new Option(
    "--compute-first <b>",
    "partial: blocks at the start of the model computed on every step, 1 .. depth-1 (instead of --compute-last)",
  )
    .argParser(positiveInt("--compute-first"));
export const warmupOption = () =>
  new Option("--warmup <w>", "any policy: the first W steps run in full").argParser(wholeNumber("--warmup")).default(0);
export const cooldownOption = () =>
  new Option("--cooldown <c>", "any policy: the last C steps run in full").argParser(wholeNumber("--cooldown")).default(0);
export const maxReuseOption = () =>
  new Option("--max-reuse <n>", "any policy: at most N reuse steps in a row, then a full step").argParser(positiveInt("--max-reuse"));

export function parseThreshold(value: string): number {
  const x = Number(value);
  if (value.trim() === "" || !Number.isFinite(x) || x < 0) {
    throw new InvalidArgumentError(`"${value}" is not a threshold: use a number >= 0 (0 never reuses; try 0.05 .. 0.5)`);
  }
  return x;
}

export function wholeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${flag} must be a whole number >= 0, got "${value}"`);
    }
    return n;
  };
}

/**
 * -N, --schedule, --policy and the policies' parameters: the cache options every sampling
 * command takes, added to `command` with their types, so its action reads them as
 * lib/resolve.ts's CacheFlags.
 */
export function withCacheOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(
  command: Command<Args, Opts, Globals>,
) {
  return command
    .addOption(intervalOption())
    .addOption(scheduleOption())
    .addOption(policyOption())
    .addOption(thresholdOption())
    .addOption(lookaheadOption())
    .addOption(computeLastOption())
    .addOption(computeFirstOption())
    .addOption(warmupOption())
    .addOption(cooldownOption())
    .addOption(maxReuseOption());
}

/** The options given on the command line, by attribute name (the others hold their defaults, or nothing). */
export function givenFlags(command: CommandUnknownOpts): Set<string> {
  const names = command.options.map((o) => o.attributeName());
  return new Set(names.filter((n) => ![undefined, "default"].includes(command.getOptionValueSource(n))));
}
