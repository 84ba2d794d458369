/**
 * A converted DiT bundle as three step functions over ONNX Runtime sessions: full,
 * reuse (from a residual) and the literal per-block path. Conditioning (labels,
 * guidance scale and channels) is fixed for a batch, so callers pass only what
 * changes per step.
 */
import { ForaError } from "../../errors.ts";
import { type Device, f32, type HostTensor, i64, openSession, type Session } from "../../runtime/session.ts";
import { ditGraphPath, type Manifest, type Precision } from "../../bundle/manifest.ts";
import { type DitConfig, numTokens, outChannels } from "./config.ts";
import { guidanceMask } from "./graphs.ts";

export interface DitConditioning {
  labels: number[];
  /** 1 disables guidance (and halves the batch the model computes). */
  cfgScale: number;
  cfgChannels: "ref" | "all";
}

export interface DitStepModel {
  readonly config: DitConfig;
  readonly batch: number;
  /** Rows the model computes per step: 2B with guidance, B without. */
  readonly modelBatch: number;
  full(x: Float32Array, t: number, reuseTimes: number[]): Promise<{ out: Float32Array; residuals: Float32Array }>;
  reuse(x: Float32Array, t: number, residual: Float32Array): Promise<Float32Array>;
  /** Literal path: blocks flagged in `reuse` take their A_k/M_k from the cache arrays. */
  blocks(x: Float32Array, t: number, reuse: boolean[], cachedAttn: Float32Array, cachedMlp: Float32Array): Promise<{
    out: Float32Array;
    attn: Float32Array;
    mlp: Float32Array;
  }>;
  /** Elements of one block's cached tensor: modelBatch * T * D. */
  readonly featureSize: number;
  release(): Promise<void>;
}

export interface StepModelOptions {
  precision?: Precision;
  device?: Device;
  threads?: number;
}

export async function openDitStepModel(
  dir: string,
  manifest: Manifest,
  cond: DitConditioning,
  opts: StepModelOptions = {},
): Promise<DitStepModel> {
  const cfg = manifest.dit.config;
  const guided = cond.cfgScale !== 1;
  const precision = opts.precision ?? "fp32";
  for (const l of cond.labels) {
    if (!Number.isInteger(l) || l < 0 || l >= cfg.numClasses) {
      throw new ForaError("usage", `class ${l} is out of range: this model has classes 0..${cfg.numClasses - 1}`);
    }
  }
  const B = cond.labels.length, C = cfg.inChannels, S = cfg.inputSize;
  const modelBatch = guided ? 2 * B : B;
  const T = numTokens(cfg), D = cfg.hiddenSize;
  const sessions = new Map<string, Session>();
  const session = async (kind: "full" | "reuse" | "blocks") => {
    let s = sessions.get(kind);
    if (!s) {
      const path = ditGraphPath(dir, manifest, { kind, guidance: guided ? "cfg" : "plain", precision });
      s = await openSession(path, { device: opts.device, threads: opts.threads });
      sessions.set(kind, s);
    }
    return s;
  };
  const fixed: Record<string, HostTensor> = { class_labels: i64([B], cond.labels) };
  if (guided) {
    fixed.guidance_scale = f32([1], [cond.cfgScale]);
    fixed.guidance_mask = f32([outChannels(cfg)], guidanceMask(cfg, cond.cfgChannels));
  }
  const stepFeeds = (x: Float32Array, t: number) => ({ ...fixed, latent: f32([B, C, S, S], x), timestep: f32([1], [t]) });
  const featureSize = modelBatch * T * D;
  // Open the two graphs every cached run needs now, so load errors surface before sampling.
  await session("full");
  await session("reuse");
  return {
    config: cfg,
    batch: B,
    modelBatch,
    featureSize,
    async full(x, t, reuseTimes) {
      const out = await (await session("full")).run({ ...stepFeeds(x, t), reuse_timesteps: f32([reuseTimes.length], reuseTimes) });
      return { out: out.model_out.data as Float32Array, residuals: out.residuals.data as Float32Array };
    },
    async reuse(x, t, residual) {
      const out = await (await session("reuse")).run({ ...stepFeeds(x, t), residual: f32([modelBatch, T, D], residual) });
      return out.model_out.data as Float32Array;
    },
    async blocks(x, t, reuse, cachedAttn, cachedMlp) {
      const L = cfg.depth;
      const out = await (await session("blocks")).run({
        ...stepFeeds(x, t),
        reuse: { dtype: "bool", shape: [L], data: Uint8Array.from(reuse, (r) => (r ? 1 : 0)) },
        cached_attn: f32([L, modelBatch, T, D], cachedAttn),
        cached_mlp: f32([L, modelBatch, T, D], cachedMlp),
      });
      return { out: out.model_out.data as Float32Array, attn: out.attn.data as Float32Array, mlp: out.mlp.data as Float32Array };
    },
    async release() {
      for (const s of sessions.values()) await s.release();
      sessions.clear();
    },
  };
}
