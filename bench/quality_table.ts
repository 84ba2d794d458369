/**
 * FORA's quality-vs-speed table in the shape of the paper's Table 1, on the shipped
 * Fashion-MNIST DiT: for each sampler and interval N, class accuracy and Fréchet
 * distance (classifier features vs the test set) of the same seeded samples, and the
 * sampling time per image with the speed-up over N = 1 measured in the same run.
 *
 * With --precisions fp32,int8 every row is measured for each precision (int8: the bundle's int8
 * graphs, `fora convert --precision fp32,int8`), speed-ups against the same precision's N = 1.
 *
 *   deno task bench:quality [--samples 1000] [--intervals 1,2,3,5,7,10] [--samplers ddpm:250,ddim:50] [--precisions fp32]
 */
import { parseArgs } from "node:util";
import os from "node:os";
import { DEFAULT_CLASSIFIER, DEFAULT_MODEL } from "../lib/defaults.ts";
import { type EvalSummary, evaluate } from "../lib/eval/evaluate.ts";
import { staticPolicy } from "../lib/fora/policy.ts";
import { isSamplerName } from "../lib/samplers/mod.ts";
import { type Precision, PRECISIONS } from "../lib/bundle/manifest.ts";
import { readManifest } from "../lib/bundle/read.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string", default: DEFAULT_MODEL },
    samples: { type: "string", default: "1000" },
    batch: { type: "string", default: "100" },
    intervals: { type: "string", default: "1,2,3,5,7,10" },
    samplers: { type: "string", default: "ddpm:250,ddim:50" },
    cfg: { type: "string", default: "4" },
    precisions: { type: "string", default: "fp32" },
  },
});
const samples = Number(args.samples), intervals = args.intervals!.split(",").map(Number);
const manifest = await readManifest(args.model!);
const precisions = args.precisions!.split(",") as Precision[];
for (const p of precisions) if (!PRECISIONS.includes(p)) throw new Error(`unknown precision ${p}; use ${PRECISIONS.join(", ")}`);
console.log(
  `model ${args.model}, ${samples} samples per row (classes cycled, seed 0), cfg ${args.cfg}, CPU (${
    os.cpus()[0]?.model
  }, ${os.cpus().length} cores)\n`,
);
console.log("| sampler | precision | N | full steps | class accuracy | Fréchet distance | ms / image | speed-up vs N=1 |");
console.log("|---|---|---|---|---|---|---|---|");
for (const spec of args.samplers!.split(",")) {
  for (const precision of precisions) {
    const [sampler, stepsText] = spec.split(":");
    if (!isSamplerName(sampler)) throw new Error(`unknown sampler ${sampler}`);
    const steps = Number(stepsText);
    let base: EvalSummary | undefined;
    for (const N of intervals) {
      const s = await evaluate({
        model: args.model!,
        manifest,
        precision,
        device: "cpu",
        sampler,
        steps,
        cfg: Number(args.cfg),
        cfgChannels: "ref",
        policy: staticPolicy(steps, N),
        samples,
        batch: Number(args.batch),
        seed: 0,
        classifier: DEFAULT_CLASSIFIER,
      });
      base ??= s;
      const speedup = base.ms_per_image / s.ms_per_image;
      console.log(
        `| ${sampler} ${steps} | ${precision} | ${N} | ${s.full_steps} | ${(100 * s.accuracy).toFixed(1)}% | ${
          s.frechet_distance?.toFixed(3)
        } | ${s.ms_per_image.toFixed(1)} | ${speedup.toFixed(2)}x |`,
      );
    }
  }
}
