/**
 * A converted DiT bundle as three step functions over ONNX Runtime sessions: full,
 * reuse (from a residual) and the literal per-block path. Sessions are opened once per
 * run; labels are bound per batch, so step calls pass only what changes per step.
 */
import { ForaError } from "../../errors.ts";
import { type Device, f32, type HostTensor, i64, openSession, type Session } from "../../runtime/session.ts";
import { ditGraphPath, type Manifest, type Precision } from "../../bundle/manifest.ts";
import { type DitConfig, numTokens, outChannels } from "./config.ts";
import type { DitGraphKind } from "./graphs.ts";
import { guidanceMask } from "../../../kernels/guidance.ts";
import { type CachePolicy, decidesAtRunTime, plannedKinds } from "../../fora/policy.ts";
import type { StepModel } from "../../fora/step_model.ts";

export interface GuidanceOptions {
  /** 1 disables guidance (and halves the batch the model computes). */
  cfgScale: number;
  cfgChannels: "ref" | "all";
}

/** A DiT bundle's sessions, opened once and bound to a batch's labels per batch. */
export interface DitStepModel {
  readonly config: DitConfig;
  bind(labels: number[]): StepModel;
  release(): Promise<void>;
}

export interface StepModelOptions {
  precision?: Precision;
  device?: Device;
  threads?: number;
  /** The cache policy the run drives: the graphs it needs are opened up front (graphsFor). */
  policy?: CachePolicy;
}

/** The step graphs a run under `policy` calls (static FORA: full and reuse). */
export function graphsFor(policy?: CachePolicy): DitGraphKind[] {
  if (policy?.kind === "partial") return ["partial_full", "partial_reuse"];
  return policy && decidesAtRunTime(policy) ? ["full", "reuse", "probe"] : ["full", "reuse"];
}

function bools(n: number, f: (k: number) => boolean): HostTensor {
  return { dtype: "bool", shape: [n], data: Uint8Array.from({ length: n }, (_, k) => (f(k) ? 1 : 0)) };
}

export async function openDitStepModel(
  dir: string,
  manifest: Manifest,
  guidance: GuidanceOptions,
  opts: StepModelOptions = {},
): Promise<DitStepModel> {
  const cfg = manifest.dit.config;
  const guided = guidance.cfgScale !== 1;
  const precision = opts.precision ?? "fp32";
  if (precision === "int8" && opts.device && opts.device !== "cpu") {
    // int8 graphs are made for the CPU execution provider's int8 kernels (MLAS).
    throw new ForaError(
      "usage",
      `--precision int8 runs on the CPU only; use --device cpu, or --precision fp16 with --device ${opts.device}`,
    );
  }
  const C = cfg.inChannels, S = cfg.inputSize, T = numTokens(cfg), D = cfg.hiddenSize, L = cfg.depth;
  // A run without reuse steps (N=1) calls the full graph back to back: its pool may spin.
  const spinning = opts.policy !== undefined && plannedKinds(opts.policy).every((k) => k === "full");
  const sessions = new Map<string, Session>();
  const session = async (kind: DitGraphKind) => {
    let s = sessions.get(kind);
    if (!s) {
      const path = ditGraphPath(dir, manifest, { kind, guidance: guided ? "cfg" : "plain", precision });
      s = await openSession(path, { device: opts.device, threads: opts.threads, spinning });
      sessions.set(kind, s);
    }
    return s;
  };
  // Open the graphs the run needs now, so a missing or broken one fails before sampling starts.
  for (const kind of graphsFor(opts.policy)) await session(kind);
  const guidanceFeeds: Record<string, HostTensor> = guided
    ? {
      guidance_scale: f32([1], [guidance.cfgScale]),
      guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, guidance.cfgChannels)),
    }
    : {};
  return {
    config: cfg,
    bind(labels) {
      for (const l of labels) {
        if (!Number.isInteger(l) || l < 0 || l >= cfg.numClasses) {
          throw new ForaError("usage", `class ${l} is out of range: this model has classes 0..${cfg.numClasses - 1}`);
        }
      }
      const B = labels.length, modelBatch = guided ? 2 * B : B;
      const fixed = { ...guidanceFeeds, class_labels: i64([B], labels) };
      const stepFeeds = (x: Float32Array, t: number) => ({ ...fixed, latent: f32([B, C, S, S], x), timestep: f32([1], [t]) });
      return {
        depth: L,
        batch: B,
        modelBatch,
        featureSize: modelBatch * T * D,
        async full(x, t, reuseTimes) {
          const out = await (await session("full")).run({ ...stepFeeds(x, t), reuse_timesteps: f32([reuseTimes.length], reuseTimes) });
          return { out: out.model_out.data as Float32Array, residuals: out.residuals.data as Float32Array };
        },
        partial: {
          async full(x, t, reuseTimes, reused) {
            const out = await (await session("partial_full")).run({
              ...stepFeeds(x, t),
              reuse_timesteps: f32([reuseTimes.length], reuseTimes),
              residual_mask: f32([L], Float32Array.from(reused, (r) => (r ? 1 : 0))),
            });
            return { out: out.model_out.data as Float32Array, residuals: out.residuals.data as Float32Array };
          },
          async reuse(x, t, residual, reused) {
            const at = reused.indexOf(true);
            if (at < 0 || reused.lastIndexOf(true) - at + 1 !== reused.filter(Boolean).length) {
              throw new Error(`partial reuse needs one contiguous run of reused blocks, got ${reused.map(Number).join("")}`);
            }
            const out = await (await session("partial_reuse")).run({
              ...stepFeeds(x, t),
              residual: f32([modelBatch, T, D], residual),
              compute_blocks: bools(L, (k) => !reused[k]),
              residual_at: i64([1], [at]),
            });
            return out.model_out.data as Float32Array;
          },
        },
        probe: async (x, t) => {
          const out = await (await session("probe")).run(stepFeeds(x, t));
          return out.probe.data as Float32Array;
        },
        async reuse(x, t, residuals, j = 0) {
          const size = modelBatch * T * D;
          const residual = residuals.subarray(j * size, (j + 1) * size);
          const out = await (await session("reuse")).run({ ...stepFeeds(x, t), residual: f32([modelBatch, T, D], residual) });
          return out.model_out.data as Float32Array;
        },
        async blocks(x, t, reuse, cachedAttn, cachedMlp) {
          const out = await (await session("blocks")).run({
            ...stepFeeds(x, t),
            reuse: { dtype: "bool", shape: [L], data: Uint8Array.from(reuse, (r) => (r ? 1 : 0)) },
            cached_attn: f32([L, modelBatch, T, D], cachedAttn),
            cached_mlp: f32([L, modelBatch, T, D], cachedMlp),
          });
          return { out: out.model_out.data as Float32Array, attn: out.attn.data as Float32Array, mlp: out.mlp.data as Float32Array };
        },
      };
    },
    async release() {
      for (const s of sessions.values()) await s.release();
      sessions.clear();
    },
  };
}
