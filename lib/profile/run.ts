/**
 * `fora profile` as a library function: one generation (lib/generator.ts, the same code
 * `fora generate` runs) with ONNX Runtime's profiler on for every session it opens, then
 * each session's trace attributed to model parts. Full steps, reuse steps and the VAE
 * decode run in separate graphs, so each gets its own breakdown.
 */
import { basename } from "node:path";
import type { Manifest } from "../bundle/manifest.ts";
import { describePolicy, type StepKind } from "../fora/policy.ts";
import { openGenerator } from "../generator.ts";
import type { RunSettings } from "../resolve.ts";
import { withProfiling } from "../runtime/session.ts";
import { ForaError } from "../errors.ts";
import { attribute, type Attribution, type TimeStat } from "./attribute.ts";
import { graphParts } from "./parts.ts";
import { readTrace } from "./trace.ts";

/** A resolved run on a DiT bundle (lib/resolve.ts) and what to profile. */
export interface ProfileOptions extends RunSettings<Manifest> {
  classes: number[];
  seed: number;
  /** Keep the first run of each graph (by default left out as warm-up when it ran twice or more). */
  includeWarmup?: boolean;
  /** Kernel time statistic (attribute.ts): median per kernel over runs (default), or the sum. */
  stat?: TimeStat;
  /** Write ONNX Runtime's raw traces into this folder (kept); default: a temp folder, removed. */
  traceDir?: string;
  signal?: AbortSignal;
}

/**
 * Which work a graph does: full steps, reuse steps, the VAE decode, the literal per-block
 * path, and the policies' own graphs (partial reuse's two steps, the dynamic policy's probe).
 */
export type Phase = "full" | "reuse" | "partial_full" | "partial_reuse" | "probe" | "decode" | "literal";

export interface PhaseProfile extends Attribution {
  phase: Phase;
  /** The graph file, e.g. dit-full-cfg.fp32.onnx. */
  graph: string;
  /** Trace file, when kept. */
  trace: string | null;
}

export interface ProfileReport {
  model: string;
  /** The policy, and each step's kind as it ran. */
  plan: { policy: { name: string; params: Record<string, number> }; kinds: StepKind[] };
  steps: number;
  /** One per graph that ran, in the order full, partial_full, reuse, partial_reuse, probe, decode, literal. */
  phases: PhaseProfile[];
  samplingMs: number;
  decodeMs: number;
}

export async function profileRun(opts: ProfileOptions): Promise<ProfileReport> {
  const dir = opts.traceDir ?? await Deno.makeTempDir({ prefix: "fora-profile-" });
  if (opts.traceDir) {
    try {
      await Deno.mkdir(opts.traceDir, { recursive: true });
    } catch (e) {
      throw new ForaError("io", `--trace-dir ${opts.traceDir}: cannot create the folder (${(e as Error).message})`);
    }
  }
  try {
    const kinds: StepKind[] = [];
    const { result, sessions } = await withProfiling(dir, async () => {
      const gen = await openGenerator({ ...opts });
      try {
        const req = { classes: opts.classes, seed: opts.seed, firstIndex: 0, signal: opts.signal };
        return await gen.sampleBatch(req, (r) => kinds.push(r.kind));
      } finally {
        await gen.release();
      }
    });
    const phases: PhaseProfile[] = [];
    for (const s of sessions) {
      if (!s.trace) throw new ForaError("runtime", `ONNX Runtime wrote no profile for ${s.graph} into ${dir}`);
      const trace = await readTrace(s.trace);
      if (trace.runs.length === 0) continue;
      const a = attribute(trace, await graphParts(s.graph), { skipRuns: opts.includeWarmup ? 0 : 1, stat: opts.stat });
      phases.push({ ...a, phase: phaseOf(s.graph), graph: basename(s.graph), trace: opts.traceDir ? s.trace : null });
    }
    const order: Phase[] = ["full", "partial_full", "reuse", "partial_reuse", "probe", "decode", "literal"];
    phases.sort((a, b) => order.indexOf(a.phase) - order.indexOf(b.phase));
    // The kinds as they ran (a dynamic policy decides some during the run).
    const plan = { policy: describePolicy(opts.policy), kinds };
    return { model: opts.model, plan, steps: opts.steps, phases, samplingMs: result.samplingMs, decodeMs: result.decodeMs };
  } finally {
    if (!opts.traceDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function phaseOf(graph: string): Phase {
  const name = basename(graph);
  if (name.startsWith("dit-full")) return "full";
  if (name.startsWith("dit-reuse")) return "reuse";
  if (name.startsWith("dit-partial_full")) return "partial_full";
  if (name.startsWith("dit-partial_reuse")) return "partial_reuse";
  if (name.startsWith("dit-probe")) return "probe";
  if (name.startsWith("dit-blocks")) return "literal";
  return "decode";
}
