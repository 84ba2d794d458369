/**
 * The options every sampling command shares (generate, eval, sample, profile, ...):
 * typed commander Options, their parsers, and the check that turns them into the
 * generator's settings. One definition, so the commands agree on names and defaults.
 */
import { InvalidArgumentError, Option, type OptionValues } from "@commander-js/extra-typings";
import { ForaError } from "../lib/errors.ts";
import { DEFAULT_MODEL } from "../lib/defaults.ts";
import { defaultSteps, isSamplerName, type SamplerName, samplerNames } from "../lib/samplers/mod.ts";
import { type CachePolicy, makePolicy, POLICY_DEFAULTS, POLICY_NAMES, type PolicyName, type StepKind } from "../lib/fora/policy.ts";
import type { GeneratorSettings } from "../lib/generator.ts";
import { DEVICE_CHOICES, type DeviceChoice, resolveDevice } from "../lib/runtime/devices.ts";
import { readScheduleFile, stepsForSchedule } from "../lib/fora/schedule_file.ts";

export const modelOption = () =>
  new Option("-m, --model <bundle>", "bundle folder (from fora convert)").default(DEFAULT_MODEL, "the shipped Fashion-MNIST DiT");
export const samplerOption = () => new Option("--sampler <name>", `sampler: ${samplerNames.join(", ")}`).default("ddpm");
export const stepsOption = () =>
  new Option("--steps <n>", "sampling steps (default: ddpm 250, ddim 50, dpm-solver++ 20, iddpm 100)").argParser(positiveInt("--steps"));
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
    .argParser(positiveInt("--cache-interval")).default(3);
export const scheduleOption = () =>
  new Option("--schedule <file.json>", "run this recompute schedule (from fora similarity --suggest-schedule) instead of -N")
    .conflicts("cacheInterval");
export const precisionOption = () =>
  new Option("--precision <p>", "graph precision: fp32 (CPU) or fp16").choices(["fp32", "fp16"] as const).default("fp32" as const);
export const deviceOption = () =>
  new Option("--device <name>", "execution provider: cpu, cuda, webgpu, or auto (the best available: cuda, then webgpu, then cpu)")
    .choices(DEVICE_CHOICES).default("auto" as DeviceChoice);
export const threadsOption = () =>
  new Option("--threads <n>", "ONNX Runtime intra-op threads (default: all cores)").argParser(positiveInt("--threads"));

export interface SamplingFlags {
  model?: string;
  sampler: string;
  steps?: number;
  cfg: number;
  cfgChannels: "ref" | "all";
  cacheInterval: number;
  precision: "fp32" | "fp16";
  threads?: number;
  /** Absent in commands without --device: the CPU. */
  device?: DeviceChoice;
}

/** Validates flag combinations and resolves defaults (the cache policy apart: cachedSamplingSettings). */
export async function samplingSettings(flags: SamplingFlags): Promise<Omit<GeneratorSettings, "policy"> & { sampler: SamplerName }> {
  if (!isSamplerName(flags.sampler)) {
    throw new ForaError("usage", `--sampler "${flags.sampler}" is unknown; use one of ${samplerNames.join(", ")}`);
  }
  const steps = flags.steps ?? defaultSteps[flags.sampler];
  const model = flags.model ?? DEFAULT_MODEL;
  if (model === DEFAULT_MODEL && !(await exists(DEFAULT_MODEL))) {
    throw new ForaError("usage", `no default model in this checkout (${DEFAULT_MODEL}); pass --model BUNDLE (make one with fora convert)`);
  }
  return {
    model,
    sampler: flags.sampler,
    steps,
    cfg: flags.cfg,
    cfgChannels: flags.cfgChannels,
    precision: flags.precision,
    threads: flags.threads,
    device: await resolveDevice(flags.device ?? "cpu"),
  };
}

export function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${flag} must be a whole number >= 1, got "${value}"`);
    }
    return n;
  };
}

export function parseCfg(value: string): number {
  const s = Number(value);
  if (value.trim() === "" || !Number.isFinite(s) || s < 1) {
    throw new InvalidArgumentError(`"${value}" is not a guidance scale: use a number >= 1 (1 disables guidance)`);
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

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
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

export interface PolicyFlags {
  policy: PolicyName;
  threshold?: number;
  lookahead?: number;
  computeLast?: number;
  computeFirst?: number;
  warmup: number;
  cooldown: number;
  maxReuse?: number;
  cacheInterval: number;
  /** Whether -N was given on the command line (not its default). */
  intervalGiven?: boolean;
}

/**
 * The cache policy the flags describe, with the combinations that make no sense refused
 * (each error names the flag and what to do). `schedule`: the plan of --schedule FILE;
 * `depth`: the model's block count (DiT bundles; partial needs it).
 */
export function policyOf(
  flags: PolicyFlags,
  steps: number,
  opts: { schedule?: { kinds: readonly StepKind[]; params: Record<string, number> }; depth?: number } = {},
): CachePolicy {
  const name: PolicyName = opts.schedule && flags.policy === "static" ? "schedule" : flags.policy;
  if (opts.schedule && name !== "schedule") {
    throw new ForaError("usage", `--schedule runs the schedule policy; leave out --policy ${name} or --schedule`);
  }
  if (name === "schedule" && !opts.schedule) {
    throw new ForaError("usage", "--policy schedule needs --schedule FILE.json (make one with fora similarity --suggest-schedule)");
  }
  const only = (flag: string, value: unknown, policy: PolicyName) => {
    if (value !== undefined && name !== policy) {
      throw new ForaError("usage", `${flag} applies to --policy ${policy} only (this run uses ${name})`);
    }
  };
  only("--threshold", flags.threshold, "dynamic");
  only("--lookahead", flags.lookahead, "dynamic");
  only("--compute-last", flags.computeLast, "partial");
  only("--compute-first", flags.computeFirst, "partial");
  if (name === "dynamic" && flags.intervalGiven) {
    throw new ForaError("usage", "--policy dynamic decides every step itself: leave out -N (use --threshold, --max-reuse)");
  }
  if (flags.warmup + flags.cooldown > steps) {
    throw new ForaError("usage", `--warmup ${flags.warmup} and --cooldown ${flags.cooldown} cover more than the ${steps} steps`);
  }
  return makePolicy({
    policy: name,
    steps,
    interval: flags.cacheInterval,
    threshold: flags.threshold,
    lookahead: flags.lookahead,
    computeLast: flags.computeLast,
    computeFirst: flags.computeFirst,
    depth: opts.depth,
    schedule: opts.schedule,
    warmup: flags.warmup,
    cooldown: flags.cooldown,
    maxReuse: flags.maxReuse,
  });
}

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
 * command takes (add each with addOption; read them back with cacheFlags).
 */
export function cacheOptions() {
  return [
    intervalOption(),
    scheduleOption(),
    policyOption(),
    thresholdOption(),
    lookaheadOption(),
    computeLastOption(),
    computeFirstOption(),
    warmupOption(),
    cooldownOption(),
    maxReuseOption(),
  ];
}

/** The parsed values of cacheOptions() (typed by their parsers and defaults). */
export function cacheFlags(cmd: { opts(): OptionValues; getOptionValueSource(key: string): string | undefined }): CacheFlags {
  // The command's typed view does not include options added in a loop; their parsers and defaults make these the types.
  const values = cmd.opts() as unknown as CacheFlags;
  return { ...values, intervalGiven: cmd.getOptionValueSource("cacheInterval") === "cli" };
}

export type CacheFlags = PolicyFlags & { schedule?: string };

/**
 * A command's sampling settings with its cache policy: --schedule's file read (its step
 * count wins over the default), the policy built and checked, and `plan` its summary.
 * `depthOf` gives the model's block count (DiT bundles), which partial reuse needs.
 */
export async function cachedSamplingSettings(
  flags: SamplingFlags & CacheFlags,
  depthOf: (model: string) => Promise<number | undefined>,
) {
  const file = flags.schedule ? await readScheduleFile(flags.schedule) : undefined;
  const schedule = file ? { kinds: file.kinds, params: file.policy.params } : undefined;
  const settings = await samplingSettings(file ? { ...flags, steps: stepsForSchedule(file, flags.schedule!, flags.steps) } : flags);
  const policy = policyOf(flags, settings.steps, { schedule, depth: await depthOf(settings.model) });
  return { ...settings, policy };
}
