/**
 * Cache policies against static FORA on the shipped Fashion-MNIST DiT (issue 8): for each
 * row, class accuracy and Fréchet distance (classifier features vs the test set, as
 * `fora eval`) of the same seeded samples, the mean full steps per run, and the sampling
 * time per image with the speed-up over N = 1 measured in the same run. Then what the
 * step graphs cost: the full step as a function of the residuals it emits (J, the
 * dynamic policy's lookahead), the reuse step, and the partial-reuse step per B.
 *
 *   deno run -A bench/policies.ts [--samples 1000] [--sampler ddim] [--steps 50]
 *     [--rows "static:1,static:2,...,dynamic:0.1,partial:3/1,forecast:3"] [--guards "warmup=2,cooldown=2"]
 *     [--part quality|cost|both]
 *
 * Row syntax: static:N | dynamic:THRESHOLD[/MAX_REUSE] | partial:N/B (last B blocks computed) |
 * partial-first:N/B (first B) | forecast:N | schedule:FILE.json (a `fora similarity --suggest-schedule` plan).
 * `--guards` applies to every row but static:1 (warmup=W, cooldown=C, max_reuse=M).
 */
import { parseArgs } from "node:util";
import os from "node:os";
import { DEFAULT_CLASSIFIER, DEFAULT_MODEL } from "../lib/defaults.ts";
import { type EvalSummary, evaluate } from "../lib/eval/evaluate.ts";
import {
  type CachePolicy,
  describePolicy,
  dynamicPolicy,
  forecastPolicy,
  type Guards,
  partialPolicy,
  reusedBlocks,
  schedulePolicy,
  staticPolicy,
} from "../lib/fora/policy.ts";
import { isSamplerName } from "../lib/samplers/mod.ts";
import { readScheduleFile } from "../lib/fora/schedule_file.ts";
import { readManifest } from "../lib/bundle/read.ts";
import { openDitStepModel } from "../lib/models/dit/step_model.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string", default: DEFAULT_MODEL },
    samples: { type: "string", default: "1000" },
    batch: { type: "string", default: "50" },
    sampler: { type: "string", default: "ddim" },
    steps: { type: "string", default: "50" },
    cfg: { type: "string", default: "4" },
    rows: {
      type: "string",
      default: "static:1,static:2,static:3,static:4,static:5,static:7,dynamic:0.03/6,dynamic:0.06/6,dynamic:0.1/6,dynamic:0.15/6," +
        "dynamic:0.25/8,partial:3/1,partial:4/2,forecast:3,forecast:4,forecast:5",
    },
    guards: { type: "string", default: "" },
    part: { type: "string", default: "both" },
    threads: { type: "string" },
  },
});
const sampler = args.sampler!, steps = Number(args.steps), samples = Number(args.samples);
if (!isSamplerName(sampler)) throw new Error(`unknown sampler ${sampler}`);
const manifest = await readManifest(args.model!);
const depth = manifest.dit.config.depth;
const threads = args.threads ? Number(args.threads) : undefined;
const machine = `${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.cpus().length} cores; onnxruntime-node CPU EP, fp32`;

function guardsOf(text: string): Guards {
  const g: Guards = {};
  for (const part of text.split(",").filter(Boolean)) {
    const [k, v] = part.split("=");
    if (k === "warmup") g.warmup = Number(v);
    else if (k === "cooldown") g.cooldown = Number(v);
    else if (k === "max_reuse") g.maxReuse = Number(v);
    else throw new Error(`unknown guard ${k}`);
  }
  return g;
}

async function policyOf(row: string, guards: Guards): Promise<CachePolicy> {
  const [name, spec] = row.split(":");
  const [a, b] = spec.split("/").map(Number);
  switch (name) {
    case "schedule": {
      const file = await readScheduleFile(spec);
      return schedulePolicy(file.kinds, file.policy.params, guards);
    }
    case "static":
      return staticPolicy(steps, a, a === 1 ? {} : guards);
    case "dynamic":
      return dynamicPolicy(steps, a, b || 4, { ...guards, ...(b ? { maxReuse: b } : {}) });
    case "partial":
      return partialPolicy(steps, a, { end: "last", blocks: b }, depth, guards);
    case "partial-first":
      return partialPolicy(steps, a, { end: "first", blocks: b }, depth, guards);
    case "forecast":
      return forecastPolicy(steps, a, guards);
  }
  throw new Error(`unknown row ${row}`);
}

if (args.part !== "cost") {
  const guards = guardsOf(args.guards!);
  console.log(
    `model ${args.model}, ${samples} samples per row (classes cycled, seed 0), ${sampler} ${steps} steps, cfg ${args.cfg}; ${machine}`,
  );
  if (args.guards) console.log(`guards on every row but static N=1: ${args.guards}`);
  console.log("\n| policy | params | full steps (mean) | class accuracy | Fréchet distance | ms / image | speed-up vs N=1 |");
  console.log("|---|---|---|---|---|---|---|");
  let base: EvalSummary | undefined;
  for (const row of args.rows!.split(",")) {
    const policy = await policyOf(row, guards);
    const s = await evaluate({
      model: args.model!,
      manifest,
      precision: "fp32",
      device: "cpu",
      sampler,
      steps,
      cfg: Number(args.cfg),
      cfgChannels: "ref",
      policy,
      samples,
      batch: Number(args.batch),
      seed: 0,
      classifier: DEFAULT_CLASSIFIER,
      threads,
    });
    base ??= s;
    const params = Object.entries(describePolicy(policy).params).map(([k, v]) => `${k}=${v}`).join(" ");
    console.log(
      `| ${policy.kind} | ${params} | ${s.full_steps.toFixed(1)} | ${(100 * s.accuracy).toFixed(1)}% | ${
        s.frechet_distance?.toFixed(3)
      } | ` +
        `${s.ms_per_image.toFixed(1)} | ${(base.ms_per_image / s.ms_per_image).toFixed(2)}x |`,
    );
  }
}

if (args.part !== "quality") {
  // Step costs on the same bundle: B = batch samples, guidance on (2B rows inside).
  const B = Number(args.batch), cfg = manifest.dit.config;
  const session = await openDitStepModel(args.model!, manifest, { cfgScale: Number(args.cfg), cfgChannels: "ref" }, { threads });
  try {
    const model = session.bind(Array.from({ length: B }, (_, i) => i % cfg.numClasses));
    const x = Float32Array.from({ length: B * cfg.inChannels * cfg.inputSize ** 2 }, (_, i) => Math.sin(i));
    const time = async (f: () => Promise<unknown>, runs = 7) => {
      await f();
      const ms: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        await f();
        ms.push(performance.now() - t0);
      }
      return ms.sort((a, b) => a - b)[runs >> 1];
    };
    const R = new Float32Array(model.featureSize);
    const { partial, probe } = model;
    if (!partial || !probe) throw new Error("the DiT step model lacks partial reuse or the probe");
    console.log(`\nstep costs, batch ${B} (+ CFG), median of 7; ${machine}\n`);
    console.log("| step | ms |");
    console.log("|---|---|");
    for (const J of [0, 1, 2, 3, 4, 6, 8]) {
      const times = Array.from({ length: J }, (_, j) => 500 - 10 * j);
      console.log(`| full, J = ${J} residuals | ${(await time(() => model.full(x, 510, times))).toFixed(1)} |`);
    }
    console.log(`| reuse | ${(await time(() => model.reuse(x, 500, R))).toFixed(2)} |`);
    console.log(`| probe (dynamic, every step) | ${(await time(() => probe(x, 500))).toFixed(2)} |`);
    for (const b of [1, 2, Math.floor(depth / 2)].filter((b, i, a) => b < depth && a.indexOf(b) === i)) {
      for (const end of ["last", "first"] as const) {
        const reused = reusedBlocks(partialPolicy(2, 1, { end, blocks: b }, depth), depth);
        console.log(
          `| partial reuse, ${end} ${b} of ${depth} blocks | ${(await time(() => partial.reuse(x, 500, R, reused))).toFixed(2)} |`,
        );
      }
      const reused = reusedBlocks(partialPolicy(2, 1, { end: "last", blocks: b }, depth), depth);
      console.log(
        `| partial full step (residuals over ${depth - b} blocks), J = 2 | ${
          (await time(() => partial.full(x, 510, [500, 490], reused))).toFixed(1)
        } |`,
      );
    }
  } finally {
    await session.release();
  }
}
