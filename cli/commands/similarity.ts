/** `fora similarity`: how each block's attention and MLP features change across steps. */
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { resolveSampling } from "../../lib/resolve.ts";
import { scheduleFile, writeScheduleFile } from "../../lib/fora/schedule_file.ts";
import { type Branch, mib, similarityRun } from "../../lib/similarity/run.ts";
import { suggestSchedule } from "../../lib/similarity/schedule.ts";
import { writeSimilarityOutputs } from "../../lib/similarity/write.ts";
import { printLine, writeStdout } from "../../lib/events/output.ts";
import { stopOnSignals } from "../signals.ts";
import {
  cfgChannelsOption,
  cfgOption,
  modelOption,
  pathArg,
  positiveInt,
  precisionOption,
  samplerOption,
  seedOption,
  stepsOption,
  threadsOption,
} from "../sampling_options.ts";
import { classId } from "./generate.ts";

export const DEFAULT_MAX_MEMORY = "1G";
export const DEFAULT_SKETCH_DIM = 1024;
export const DEFAULT_THRESHOLD = 0.95;

export function similarityCommand() {
  return new Command("similarity")
    .summary("cosine similarity of each block's attention and MLP features across steps, with heatmaps")
    .description(
      "Run a generation through the per-block graph with every step computed in full, and compare each " +
        "chosen block's attention and MLP outputs (the tensors FORA caches) between every pair of steps. " +
        "Writes into --out: a heatmap PNG and an .npy matrix per block and branch, consecutive.png, " +
        "summary.json and one self-contained report.html. The features are kept exactly when they fit " +
        "--max-memory; otherwise each is reduced to --sketch-dim numbers by a seeded CountSketch, whose " +
        "standard error at similarity c is at most sqrt(3)(1 - c^2)/sqrt(k).",
    )
    .addOption(modelOption())
    .addOption(new Option("-c, --class <id|name>", "class of a sample; repeat for several").argParser(collect).default([] as string[], "0"))
    .addOption(samplerOption())
    .addOption(stepsOption())
    .addOption(cfgOption())
    .addOption(cfgChannelsOption())
    .addOption(seedOption())
    .addOption(precisionOption())
    .addOption(threadsOption())
    .option("--layers <list>", "blocks to analyse, e.g. 0,3,5-7 (default: all)", parseLayers)
    .addOption(
      new Option("--branches <list>", "attn, mlp or attn,mlp").argParser(parseBranches).default(["attn", "mlp"] as Branch[], "attn,mlp"),
    )
    .option("-o, --out <dir>", "output folder", pathArg("--out"), "similarity")
    .addOption(
      new Option("--max-memory <size>", "memory for the features, e.g. 512M, 2G; exact when it fits, sketched otherwise")
        .argParser(parseSize).default(parseSize(DEFAULT_MAX_MEMORY), DEFAULT_MAX_MEMORY),
    )
    .option("--sketch-dim <k>", "dimensions of the sketch", positiveInt("--sketch-dim"), DEFAULT_SKETCH_DIM)
    .option("--sketch-seed <n>", "seed of the sketch's hash", parseNonNegative("--sketch-seed"), 0)
    .option("--suggest-schedule <file.json>", "also write a recompute schedule for fora generate --schedule")
    .option(
      "--threshold <c>",
      "schedule: reuse while the similarity to the last full step is at least this",
      parseThreshold,
      DEFAULT_THRESHOLD,
    )
    .addOption(
      new Option("--aggregate <how>", "schedule: combine layers and branches by their mean or min similarity").choices(
        ["mean", "min"] as const,
      ).default("mean" as const),
    )
    .option("--max-reuse <n>", "schedule: at most this many reuse steps in a row", positiveInt("--max-reuse"))
    .option("--json", "one JSON object per block and branch, then a summary, on stdout (NDJSON)")
    .addHelpText(
      "after",
      `
Examples:
  fora similarity -m bundle --steps 250 -o sim/ && chromium sim/report.html
  fora similarity -m bundle --steps 50 --layers 0,13,27 --max-memory 256M
  fora similarity -m bundle --steps 50 --suggest-schedule sched.json --threshold 0.9
  fora generate -m bundle --schedule sched.json`,
    )
    .action(async (opts) => {
      const settings = await resolveSampling(opts, { family: "dit" });
      const manifest = settings.manifest;
      const classes = (opts.class.length ? opts.class : ["0"]).map((c) =>
        classId(c, manifest.dit.config.numClasses, manifest.dit.classNames)
      );
      const progress = !opts.json && Deno.stderr.isTerminal();
      const stop = stopOnSignals();
      let result;
      try {
        result = await similarityRun({
          ...settings,
          classes,
          seed: opts.seed,
          layers: opts.layers,
          branches: opts.branches,
          maxMemory: opts.maxMemory,
          sketchDim: opts.sketchDim,
          sketchSeed: opts.sketchSeed,
          signal: stop.signal,
          onStep: progress ? (k, S) => Deno.stderr.writeSync(new TextEncoder().encode(`\rsimilarity: step ${k + 1}/${S}`)) : undefined,
        });
      } finally {
        stop.dispose();
        if (progress) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
      }
      let schedule = null;
      if (opts.suggestSchedule) {
        const rule = { threshold: opts.threshold, aggregate: opts.aggregate, maxReuse: opts.maxReuse };
        const kinds = suggestSchedule(result.tracks, result.steps, rule);
        const params: Record<string, number> = { threshold: opts.threshold };
        if (opts.maxReuse !== undefined) params.max_reuse = opts.maxReuse;
        await writeScheduleFile(
          opts.suggestSchedule,
          scheduleFile(kinds, params, {
            made_by: "fora similarity",
            model: settings.model,
            sampler: settings.sampler,
            cfg: settings.cfg,
            classes,
            seed: opts.seed,
            layers: result.layers,
            branches: result.branches,
            aggregate: opts.aggregate,
            mode: result.memory.mode,
          }),
        );
        schedule = {
          path: opts.suggestSchedule,
          kinds,
          threshold: opts.threshold,
          aggregate: opts.aggregate,
          maxReuse: opts.maxReuse ?? null,
        };
      }
      const summary = await writeSimilarityOutputs(result, opts.out, schedule);
      const full = schedule ? schedule.kinds.filter((k) => k === "full").length : 0;
      if (opts.json) {
        const rows = [
          ...summary.tracks.map((t) => ({ kind: "track", ...t })),
          {
            kind: "summary",
            model: summary.model,
            steps: summary.steps,
            mode: summary.mode,
            sketch_dim: summary.sketch_dim,
            store_bytes: summary.store_bytes,
            report: summary.report,
            summary: join(opts.out, "summary.json"),
            consecutive: summary.consecutive,
            schedule: summary.schedule,
            schedule_full_steps: schedule ? full : null,
          },
        ];
        writeStdout(rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
        return;
      }
      const lines = [
        `similarity of ${summary.model}: ${summary.steps} steps, blocks ${result.layers.join(",")}, ${result.branches.join("+")}; ` +
        (summary.mode === "exact"
          ? `exact (${mib(summary.store_bytes)})`
          : `sketched to ${summary.sketch_dim} dimensions (${mib(summary.store_bytes)}; standard error <= ${
            summary.sketch_standard_error!.at_0_95
          } near 0.95)`),
        "block  branch  mean cos(k-1,k)  min cos(k-1,k)  cos(first,last)",
        ...summary.tracks.map((t) =>
          `${String(t.layer).padStart(5)}  ${t.branch.padEnd(6)}  ${t.consecutive_mean.toFixed(4).padStart(15)}  ${
            t.consecutive_min.toFixed(4).padStart(14)
          }  ${t.first_last.toFixed(4).padStart(15)}`
        ),
        `report: ${summary.report} (heatmaps, .npy matrices, consecutive.png, summary.json in ${opts.out})`,
      ];
      if (schedule) {
        lines.push(
          `schedule: ${schedule.path}: ${full} full steps of ${summary.steps}; run it with fora generate --schedule ${schedule.path}`,
        );
      }
      printLine(lines.join("\n"));
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Larger than any DiT's depth; --layers refuses block numbers above it. */
const MAX_LAYER = 9_999;

/** "0,3,5-7" -> [0, 3, 5, 6, 7] (sorted, unique). */
export function parseLayers(value: string): number[] {
  const out = new Set<number>();
  for (const part of value.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new InvalidArgumentError(`"${value}" is not a list of blocks: use e.g. 0,3,5-7`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InvalidArgumentError(`"${part.trim()}" is an empty range`);
    // Bounds the loop below: past 2^53 i++ stops counting (a hang), and a huge range would fill memory.
    if (b > MAX_LAYER) {
      throw new InvalidArgumentError(`"${part.trim()}": block numbers go from 0 to the model's depth - 1 (at most ${MAX_LAYER})`);
    }
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

function parseBranches(value: string): Branch[] {
  const list = value.split(",").map((s) => s.trim());
  if (list.length === 0 || list.some((b) => b !== "attn" && b !== "mlp")) {
    throw new InvalidArgumentError(`"${value}" is not a list of branches: use attn, mlp or attn,mlp`);
  }
  return [...new Set(list)] as Branch[];
}

/** "512M", "2G", "1.5GiB", "1048576" -> bytes (K, M, G, T are powers of 1024). */
export function parseSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not a size: use e.g. 512M or 2G`);
  const bytes = Number(m[1]) * 1024 ** " kmgt".indexOf((m[2] || " ").toLowerCase());
  if (!(bytes >= 1)) throw new InvalidArgumentError(`"${value}" is not a size: use e.g. 512M or 2G`);
  return Math.floor(bytes);
}

function parseThreshold(value: string): number {
  const c = Number(value);
  if (value.trim() === "" || !Number.isFinite(c) || c < -1 || c > 1) {
    throw new InvalidArgumentError(`"${value}" is not a similarity threshold: use a number from -1 to 1`);
  }
  return c;
}

function parseNonNegative(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${flag} must be a whole number >= 0, got "${value}"`);
    }
    return n;
  };
}
