/**
 * PixArt-alpha's graphs as the step functions the FORA planner drives (the StepModel contract
 * of lib/fora/step_model.ts), so caching works unchanged. Sessions are opened once; a
 * batch binds its captions: the text graph turns them into every block's cross-attention keys
 * and values once, and each step passes those along.
 *
 * Cross-attention caching (`cacheCross`): on, a full step emits the summed residuals R_j (the
 * cross-attention outputs included) and a reuse step adds R_j; off, a full step emits the
 * per-block A_k and M_k ("features" [2, L, 2B, T, D]) and a reuse step recomputes every
 * block's cross-attention around them (the reuse_xr graph).
 */
import { ForaError } from "../../errors.ts";
import { type Device, f32, type HostTensor, openSession, type Session } from "../../runtime/session.ts";
import type { StepModel } from "../../fora/step_model.ts";
import type { PixartConfig } from "./config.ts";
import type { PixartGraphKind } from "./graphs.ts";
import { guidanceMask } from "../../../kernels/guidance.ts";
import { type LatentSize, numTokens, outChannels, trainedLatent } from "../patch_grid.ts";

export interface PixartGuidance {
  /** 1 disables guidance (the plain graphs, half the work). */
  cfgScale: number;
  cfgChannels: "ref" | "all";
}

/** Caption features (text encoder outputs) of one batch: every sample's caption has the same length. */
export interface BatchCaptions {
  /** [B, condTokens, captionChannels] */
  cond: Float32Array;
  condTokens: number;
  /** [B, uncondTokens, captionChannels]; unused without guidance. */
  uncond: Float32Array;
  uncondTokens: number;
}

export interface PixartStepModel {
  readonly config: PixartConfig;
  readonly guided: boolean;
  bind(batch: number, captions: BatchCaptions, opts: { cacheCross: boolean }): Promise<StepModel>;
  release(): Promise<void>;
}

export interface PixartStepModelOptions {
  device?: Device;
  threads?: number;
  /** The latent size the step graphs were built for; the trained one unless given. */
  latent?: LatentSize;
}

/** `graphPath(kind, guided)` locates each graph file (a bundle's, or a test's). */
export async function openPixartStepModel(
  cfg: PixartConfig,
  graphPath: (kind: PixartGraphKind, guided: boolean) => string,
  guidance: PixartGuidance,
  opts: PixartStepModelOptions = {},
): Promise<PixartStepModel> {
  const guided = guidance.cfgScale !== 1;
  const C = cfg.inChannels,
    { height: H, width: W } = opts.latent ?? trainedLatent(cfg),
    T = numTokens(cfg, { height: H, width: W }),
    D = cfg.hiddenSize,
    L = cfg.depth,
    Dc = cfg.captionChannels;
  const sessions = new Map<PixartGraphKind, Session>();
  const session = async (kind: PixartGraphKind) => {
    let s = sessions.get(kind);
    if (!s) {
      // without the CPU arena: it would keep every block's attention scores (2 GiB a block at 1024 px)
      s = await openSession(graphPath(kind, guided), { device: opts.device, threads: opts.threads, cpuArena: false });
      sessions.set(kind, s);
    }
    return s;
  };
  await session("text");
  const guidanceFeeds: Record<string, HostTensor> = guided
    ? {
      guidance_scale: f32([1], [guidance.cfgScale]),
      guidance_mask: f32([outChannels(cfg)], guidanceMask(cfg, guidance.cfgChannels)),
    }
    : {};
  const textKv = async (features: Float32Array, B: number, n: number) => {
    if (features.length !== B * n * Dc) {
      throw new ForaError("runtime", `caption features hold ${features.length} values; ${B} x ${n} tokens x ${Dc} need ${B * n * Dc}`);
    }
    const out = await (await session("text")).run({ caption: f32([B, n, Dc], features) });
    return { k: out.text_k, v: out.text_v };
  };
  return {
    config: cfg,
    guided,
    async bind(B, captions, { cacheCross }) {
      const cond = await textKv(captions.cond, B, captions.condTokens);
      const uncond = guided ? await textKv(captions.uncond, B, captions.uncondTokens) : null;
      await session(cacheCross ? "full" : "full_xr");
      await session(cacheCross ? "reuse" : "reuse_xr");
      const modelBatch = guided ? 2 * B : B, size = modelBatch * T * D;
      const fixed: Record<string, HostTensor> = {
        ...guidanceFeeds,
        cond_k: cond.k,
        cond_v: cond.v,
        ...(uncond ? { uncond_k: uncond.k, uncond_v: uncond.v } : {}),
      };
      const stepFeeds = (x: Float32Array, t: number) => ({ ...fixed, latent: f32([B, C, H, W], x), timestep: f32([1], [t]) });
      const flags = (v: boolean[]): HostTensor => ({ dtype: "bool", shape: [L], data: Uint8Array.from(v, (r) => (r ? 1 : 0)) });
      return {
        depth: L,
        batch: B,
        modelBatch,
        featureSize: size,
        crossAttention: true,
        async full(x, t, reuseTimes) {
          if (cacheCross) {
            const out = await (await session("full")).run({ ...stepFeeds(x, t), reuse_timesteps: f32([reuseTimes.length], reuseTimes) });
            return { out: out.model_out.data as Float32Array, residuals: out.residuals.data as Float32Array };
          }
          const out = await (await session("full_xr")).run(stepFeeds(x, t));
          return { out: out.model_out.data as Float32Array, residuals: out.features.data as Float32Array };
        },
        async reuse(x, t, residuals, j = 0) {
          if (cacheCross) {
            const r = residuals.length === size ? residuals : residuals.subarray(j * size, (j + 1) * size);
            const out = await (await session("reuse")).run({ ...stepFeeds(x, t), residual: f32([modelBatch, T, D], r) });
            return out.model_out.data as Float32Array;
          }
          const out = await (await session("reuse_xr")).run({ ...stepFeeds(x, t), features: f32([2, L, modelBatch, T, D], residuals) });
          return out.model_out.data as Float32Array;
        },
        async blocks(x, t, reuse, cachedAttn, cachedMlp, cachedCross) {
          const cache = (a: Float32Array | undefined) => f32([L, modelBatch, T, D], a ?? new Float32Array(L * size));
          const out = await (await session("blocks")).run({
            ...stepFeeds(x, t),
            reuse: flags(reuse),
            reuse_cross: flags(cacheCross ? reuse : reuse.map(() => false)),
            cached_attn: cache(cachedAttn),
            cached_cross: cache(cachedCross),
            cached_mlp: cache(cachedMlp),
          });
          return {
            out: out.model_out.data as Float32Array,
            attn: out.attn.data as Float32Array,
            mlp: out.mlp.data as Float32Array,
            cross: out.cross.data as Float32Array,
          };
        },
      };
    },
    async release() {
      for (const s of sessions.values()) await s.release();
      sessions.clear();
    },
  };
}
