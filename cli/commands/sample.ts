/** `fora sample`: many images for an evaluation, as .npz batches, sharded and resumable. */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { isForaError } from "../../lib/errors.ts";
import { resolveRun } from "../../lib/resolve.ts";
import { chooseSink } from "../../lib/events/sink.ts";
import { sample } from "../../lib/sample/run.ts";
import { MAX_BATCH, MAX_NUM, parseShard, type Shard } from "../../lib/sample/plan.ts";
import { stopOnSignals } from "../signals.ts";
import { classId } from "./generate.ts";
import { classValues, splitClassList } from "../class_list.ts";
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

export function sampleCommand() {
  const command = withCacheOptions(
    new Command("sample")
      .summary("sample many images for an evaluation (.npz batches; sharded, resumable)")
      .description(
        "Sample --num images from a bundle for an evaluation such as FID, with FORA caching, into a " +
          "shard folder of .npz batches (arr_0: uint8 [n, H, W, C], arr_1: int64 labels; the layout of " +
          "the ADM evaluation suite and DiT's sample_ddp.py) and, with --png, one PNG per image. Image k " +
          "draws its noise from (--seed, k) and, unless --class is given, a uniformly random class from " +
          "(--seed, k) too, so any subset can be sampled again exactly. --shard i/n samples exactly the " +
          "i-th of n contiguous shares; run it again after a crash or a signal and it checks what is done " +
          "and samples only the rest. Then join the shards: fora merge DIR... --out FILE.npz.",
      )
      .addOption(modelOption())
      .requiredOption("-n, --num <n>", `images in the whole run (all shards together), 1 to ${MAX_NUM}`, positiveInt("--num", MAX_NUM))
      .addOption(
        new Option(
          "-c, --class <id|name>",
          "class by id or name; repeat, or give a comma list (3,7,sandal), for a list cycled over the images. Without it, each image's class is drawn uniformly, from --seed and its index",
        ).argParser(collect).default([] as string[], "uniform"),
      )
      .option("--class-file <file>", "classes from FILE, one id or name per line, added to the --class list")
      .option(
        "--batch <n>",
        "images per batch (per .npz file and per resumable unit); every shard of a run must use the same",
        positiveInt("--batch", MAX_BATCH),
        16,
      )
      .addOption(samplerOption())
      .addOption(stepsOption())
      .addOption(cfgOption())
      .addOption(cfgChannelsOption())
      .addOption(seedOption()),
  );
  return command
    .addOption(
      new Option("--shard <i/n>", "sample only shard i of n (0 <= i < n), e.g. $SLURM_ARRAY_TASK_ID/8")
        .argParser(parseShardArg).default({ index: 0, count: 1 } as Shard, "0/1"),
    )
    .option("-o, --out <dir>", "the shard's folder (created; an existing one of the same run is resumed)", pathArg("--out"), "samples")
    .option("--png", "also write each image as <out>/png/NNNNNN.png")
    .option("--json", "NDJSON events on stdout (default when stdout is not a terminal)")
    .addOption(precisionOption())
    .addOption(deviceOption())
    .addOption(threadsOption())
    .addHelpText(
      "after",
      `
Examples:
  fora sample -m bundle --num 50000 --cfg 1.5 --steps 250 -N 3 --out samples/all
  fora sample -m bundle --num 50000 --cfg 1.5 --shard 3/8 --out samples/shard-3
  fora merge samples/shard-* --out samples-50k.npz

Exit status: 0 done; 1 an error (message on stderr); 2 a usage error; 130 / 143 stopped by
SIGINT / SIGTERM (run the same command again to resume).`,
    )
    .action(async (opts, cmd) => {
      const settings = await resolveRun({ ...opts, given: givenFlags(cmd) }, { family: "dit" });
      const manifest = settings.manifest;
      const { numClasses } = manifest.dit.config;
      const names = manifest.dit.classNames;
      const classes = splitClassList(await classValues(opts.class, opts.classFile), names).map((c) => classId(c, numClasses, names));
      const sink = chooseSink({
        json: opts.json ?? false,
        stdoutIsTerminal: Deno.stdout.isTerminal(),
        stderrIsTerminal: Deno.stderr.isTerminal(),
      });
      const stop = stopOnSignals();
      try {
        await sample({
          ...settings,
          num: opts.num,
          classes: classes.length > 0 ? classes : "uniform",
          batch: opts.batch,
          seed: opts.seed,
          shard: opts.shard,
          out: opts.out,
          png: opts.png ?? false,
          signal: stop.signal,
        }, sink.emit);
      } finally {
        stop.dispose();
        sink.close();
      }
    });
}

/** A whole number from 1 to `max`, for `flag`. */

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseShardArg(value: string): Shard {
  try {
    return parseShard(value);
  } catch (e) {
    if (isForaError(e)) throw new InvalidArgumentError(e.message.replace(/^--shard [^:]*: /, ""));
    throw e;
  }
}
