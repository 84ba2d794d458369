/**
 * From flags to a run: the one place that reads the bundle's manifest, fills in the model
 * family's defaults (PixArt-alpha samples with DPM-Solver++ and guidance 4.5 on all
 * channels), settles the step count and the device, and builds the cache policy with every
 * flag combination checked. The commands (cli/commands/*) only parse flags and call this;
 * everything after it (lib/generator.ts, the samplers, lib/fora) trusts what it returns.
 */
import { ForaError } from "./errors.ts";
import { DEFAULT_MODEL } from "./defaults.ts";
import type { Manifest, Precision } from "./bundle/manifest.ts";
import { readManifest } from "./bundle/read.ts";
import type { PixartManifest } from "./bundle/pixart_manifest.ts";
import { readAnyManifest } from "./bundle/read.ts";
import { type CachePolicy, makePolicy, type PolicyName, type StepKind } from "./fora/policy.ts";
import { readScheduleFile, type ScheduleFile, stepsForSchedule } from "./fora/schedule_file.ts";
import { defaultSteps, isSamplerName, type SamplerName, samplerNames } from "./samplers/mod.ts";
import type { DeviceChoice } from "./runtime/devices.ts";
import { resolveDevice } from "./runtime/devices.ts";
import type { Device } from "./runtime/session.ts";

export type AnyManifest = Manifest | PixartManifest;

/** The sampling flags every sampling command shares, as parsed (cli/sampling_options.ts). */
export interface SamplingFlags {
  model?: string;
  sampler: string;
  steps?: number;
  cfg: number;
  cfgChannels: "ref" | "all";
  precision: Precision;
  threads?: number;
  /** Absent in commands without --device: the CPU. */
  device?: DeviceChoice;
  /** The flags given on the command line, by attribute name (the others hold defaults a model family may replace). */
  given?: ReadonlySet<string>;
}

/** -N, --schedule, --policy and the policies' parameters, as parsed. */
export interface CacheFlags {
  cacheInterval: number;
  schedule?: string;
  policy: PolicyName;
  threshold?: number;
  lookahead?: number;
  computeLast?: number;
  computeFirst?: number;
  warmup: number;
  cooldown: number;
  maxReuse?: number;
}

/** What a sampling run needs, resolved: the bundle (its manifest read once) and the settings. */
export interface SamplingSettings<M extends AnyManifest = AnyManifest> {
  /** Bundle folder made by `fora convert`. */
  model: string;
  manifest: M;
  sampler: SamplerName;
  steps: number;
  cfg: number;
  cfgChannels: "ref" | "all";
  precision: Precision;
  threads?: number;
  device: Device;
}

/** A sampling run with its cache policy. */
export interface RunSettings<M extends AnyManifest = AnyManifest> extends SamplingSettings<M> {
  policy: CachePolicy;
}

/** Which bundles a command reads: DiT only (sample, eval, profile, similarity), or any (generate). */
export interface ResolveOptions {
  family: "dit" | "any";
}

/** PixArt-alpha's own defaults (its pipeline's), where the flag was not given. */
export const PIXART_DEFAULTS = { sampler: "dpm-solver++", cfg: 4.5, cfgChannels: "all" } as const;

export function resolveSampling(flags: SamplingFlags, opts: { family: "dit" }): Promise<SamplingSettings<Manifest>>;
export function resolveSampling(flags: SamplingFlags, opts: ResolveOptions): Promise<SamplingSettings>;
export async function resolveSampling(flags: SamplingFlags, opts: ResolveOptions): Promise<SamplingSettings> {
  return await resolve(flags, opts, undefined);
}

export function resolveRun(flags: SamplingFlags & CacheFlags, opts: { family: "dit" }): Promise<RunSettings<Manifest>>;
export function resolveRun(flags: SamplingFlags & CacheFlags, opts: ResolveOptions): Promise<RunSettings>;
/**
 * The run the flags describe: --schedule's file read (its step count wins over the
 * sampler's default), the manifest read, the family's defaults applied, the policy built.
 */
export async function resolveRun(flags: SamplingFlags & CacheFlags, opts: ResolveOptions): Promise<RunSettings> {
  const file = flags.schedule ? await readScheduleFile(flags.schedule) : undefined;
  const settings = await resolve(flags, opts, file && { file, path: flags.schedule! });
  const depth = settings.manifest.architecture === "dit" ? settings.manifest.dit.config.depth : undefined;
  const schedule = file ? { kinds: file.kinds, params: file.policy.params } : undefined;
  return { ...settings, policy: policyOf(flags, settings.steps, { schedule, depth, intervalGiven: flags.given?.has("cacheInterval") }) };
}

async function resolve(
  flags: SamplingFlags,
  opts: ResolveOptions,
  schedule: { file: ScheduleFile; path: string } | undefined,
): Promise<SamplingSettings> {
  if (!isSamplerName(flags.sampler)) {
    throw new ForaError("usage", `--sampler "${flags.sampler}" is unknown; use one of ${samplerNames.join(", ")}`);
  }
  const scheduleSteps = schedule ? stepsForSchedule(schedule.file, schedule.path, flags.steps) : undefined;
  const model = flags.model ?? DEFAULT_MODEL;
  if (model === DEFAULT_MODEL && !(await exists(DEFAULT_MODEL))) {
    throw new ForaError("usage", `no default model in this checkout (${DEFAULT_MODEL}); pass --model BUNDLE (make one with fora convert)`);
  }
  // int8 graphs run on the CPU only (openDitStepModel refuses another device).
  const device = await resolveDevice(flags.precision === "int8" && flags.device === "auto" ? "cpu" : flags.device ?? "cpu");
  const manifest: AnyManifest = opts.family === "dit" ? await readManifest(model) : await readAnyManifest(model);
  const given = (flag: string) => flags.given?.has(flag) ?? true;
  const family = manifest.architecture === "pixart" ? PIXART_DEFAULTS : null;
  if (family && flags.precision === "int8") {
    throw new ForaError("usage", "--precision int8 runs DiT bundles only; this PixArt-alpha bundle runs in fp32 or fp16");
  }
  const sampler: SamplerName = family && !given("sampler") ? family.sampler : flags.sampler;
  return {
    model,
    manifest,
    sampler,
    steps: scheduleSteps ?? flags.steps ?? defaultSteps[sampler],
    cfg: family && !given("cfg") ? family.cfg : flags.cfg,
    cfgChannels: family && !given("cfgChannels") ? family.cfgChannels : flags.cfgChannels,
    precision: flags.precision,
    threads: flags.threads,
    device,
  };
}

/**
 * The cache policy the flags describe, with the combinations that make no sense refused
 * (each error names the flag and what to do). `schedule`: the plan of --schedule FILE;
 * `depth`: the model's block count (DiT bundles; partial needs it); `intervalGiven`:
 * whether -N was given on the command line (not its default).
 */
export function policyOf(
  flags: CacheFlags,
  steps: number,
  opts: { schedule?: { kinds: readonly StepKind[]; params: Record<string, number> }; depth?: number; intervalGiven?: boolean } = {},
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
  if (name === "dynamic" && opts.intervalGiven) {
    throw new ForaError("usage", "--policy dynamic decides every step itself: leave out -N (use --threshold, --max-reuse)");
  }
  if (flags.warmup + flags.cooldown > steps) {
    throw new ForaError("usage", `--warmup ${flags.warmup} and --cooldown ${flags.cooldown} cover more than the ${steps} steps`);
  }
  return makePolicy({
    policy: name,
    steps,
    // -N's default (3) is more than a run of 1 or 2 steps has: then every step is full. A given -N is checked.
    interval: opts.intervalGiven === false ? Math.min(flags.cacheInterval, steps) : flags.cacheInterval,
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

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
