/** `fora profile`: where the time of a generation goes, per model part. */
import { Command, Option } from "@commander-js/extra-typings";
import { resolveRun } from "../../lib/resolve.ts";
import { MAX_BATCH } from "../../lib/sample/plan.ts";
import { profileRun } from "../../lib/profile/run.ts";
import { formatProfile, profileRows } from "../../lib/profile/report.ts";
import { writeProfileChart } from "../../lib/profile/chart.ts";
import { ForaError } from "../../lib/errors.ts";
import { printLine, writeStdout } from "../../lib/events/output.ts";
import { stopOnSignals } from "../signals.ts";
import {
  cfgChannelsOption,
  cfgOption,
  givenFlags,
  modelOption,
  positiveInt,
  precisionOption,
  samplerOption,
  seedOption,
  threadsOption,
  withCacheOptions,
} from "../sampling_options.ts";
import { classId } from "./generate.ts";

export const PROFILE_STEPS = 20;

export function profileCommand() {
  const command = withCacheOptions(
    new Command("profile")
      .summary("profile a short generation: kernel time per block, attention, MLP, embedders, VAE")
      .description(
        "Run a short generation with ONNX Runtime's profiler on, and attribute the kernel time of " +
          "full steps, reuse steps and the VAE decode to model parts: per block its adaLN, norms " +
          "(LayerNorm + modulate), attention, gated residuals and MLP; the embedders, the final layer, " +
          "guidance and FORA's residuals. Each part also gets its share, analytic FLOPs and bytes, and " +
          "the achieved GFLOP/s. The first run of each graph is left out as warm-up, and each kernel's " +
          "time is its median over the runs (robust to a busy machine); see --include-warmup, --stat.",
      )
      .addOption(modelOption())
      .addOption(
        new Option("-c, --class <id|name>", "class of a sample; repeat for several").argParser(collect).default([] as string[], "0"),
      )
      .option("--batch <n>", "samples per run; the --class list repeats to fill it", positiveInt("--batch", MAX_BATCH))
      .addOption(samplerOption())
      .addOption(
        new Option("--steps <n>", `sampling steps (default ${PROFILE_STEPS}; with --schedule, its own)`).argParser(positiveInt("--steps")),
      )
      .addOption(cfgOption())
      .addOption(cfgChannelsOption())
      .addOption(seedOption()),
  );
  return command
    .addOption(precisionOption())
    .addOption(threadsOption())
    .option("--json", "one JSON object per phase and part on stdout (NDJSON) instead of the table")
    .option("--chart <file.png>", "also draw a bar chart of time per block and branch")
    .option("--trace-dir <dir>", "keep ONNX Runtime's raw traces (chrome-trace JSON) in this folder")
    .option("--include-warmup", "count the first run of each graph too")
    .addOption(
      new Option("--stat <how>", "kernel time: median over runs x runs, or the plain sum").choices(["median", "sum"] as const).default(
        "median" as const,
      ),
    )
    .addHelpText(
      "after",
      `
Examples:
  fora profile -m bundle --steps 20 -N 3
  fora profile -m bundle --json | jq -c 'select(.kind=="full" and .branch=="attn")'
  fora profile -m bundle --chart profile.png --threads 1

NDJSON fields: kind (full, reuse, decode; with --policy partial or dynamic also partial_full,
partial_reuse, probe), part, block, branch, ms, ms_per_step, share (of the
kind's kernel time), flops, flops_per_step, bytes_per_step, gflops, kernels, runs; a row with
part "total" closes each kind.`,
    )
    .action(async (opts, cmd) => {
      const settings = await resolveRun({
        ...opts,
        steps: opts.schedule ? opts.steps : opts.steps ?? PROFILE_STEPS,
        given: givenFlags(cmd),
      }, { family: "dit" });
      const manifest = settings.manifest;
      const list = opts.class.length ? opts.class : ["0"];
      const ids = list.map((c) => classId(c, manifest.dit.config.numClasses, manifest.dit.classNames));
      const classes = Array.from({ length: opts.batch ?? ids.length }, (_, i) => ids[i % ids.length]);
      if (opts.chart && !opts.chart.toLowerCase().endsWith(".png")) {
        throw new ForaError("usage", `--chart ${opts.chart}: give a file name ending in .png`);
      }
      const stop = stopOnSignals();
      try {
        const report = await profileRun({
          ...settings,
          classes,
          seed: opts.seed,
          includeWarmup: opts.includeWarmup ?? false,
          stat: opts.stat,
          traceDir: opts.traceDir,
          signal: stop.signal,
        });
        if (opts.json) {
          writeStdout(profileRows(report).map((r) => JSON.stringify(r)).join("\n") + "\n");
        } else {
          printLine(formatProfile(report));
        }
        if (opts.chart) {
          await writeProfileChart(opts.chart, report);
          console.error(`chart written to ${opts.chart}`);
        }
      } finally {
        stop.dispose();
      }
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
