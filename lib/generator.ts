/**
 * The sampling core shared by `fora generate` and batch commands: a bundle's sessions
 * opened once, then batches sampled with FORA caching and decoded to 8-bit images.
 * Nothing here writes files or events; callers get per-step reports and images.
 *
 * The pieces stay apart: the sampler only sees a Denoiser; the planner (lib/fora)
 * turns the cache plan into that Denoiser over the step model.
 */
import { signalName } from "./events/steps.ts";
import { join } from "node:path";
import { ForaError, interrupted } from "./errors.ts";
import { type Manifest, vaeGraphFile } from "./bundle/manifest.ts";
import type { RunSettings } from "./resolve.ts";
import { type DitStepModel, openDitStepModel } from "./models/dit/step_model.ts";
import { residualDenoiser, type StepListener } from "./fora/denoiser.ts";
import { type Denoiser, makeSampler, type Sampler } from "./samplers/mod.ts";
import { batchNormals, sampleRngs } from "./random/mod.ts";
import { type Image, toUint8Image } from "./io/image.ts";
import { f32, openSession, type Session } from "./runtime/session.ts";

/** A run as lib/resolve.ts returns it, on a DiT bundle (its manifest read there). */
export type GeneratorSettings = RunSettings<Manifest>;

export interface BatchRequest {
  classes: number[];
  seed: number;
  /** Global index of the batch's first sample: sample i draws from generator (seed, i). */
  firstIndex: number;
  /** Initial latent [B, C, H, W] instead of the seeded noise. */
  xT?: Float32Array;
  /** Aborted (with the signal name as reason) to stop at the next step boundary. */
  signal?: AbortSignal;
}

export interface BatchResult {
  /** Final latent [B, C, H, W], before decoding. */
  x0: Float32Array;
  /** One per sample; empty when the generator cannot decode. */
  images: Image[];
  samplingMs: number;
  decodeMs: number;
}

export interface Generator {
  readonly manifest: Manifest;
  /** False for a latent-space bundle without a VAE: batches then yield no images. */
  readonly canDecode: boolean;
  readonly sampler: Sampler;
  /** Shape of one batch's latent, [B, C, H, W]. */
  latentShape(batch: number): [number, number, number, number];
  sampleBatch(req: BatchRequest, onStep?: StepListener): Promise<BatchResult>;
  release(): Promise<void>;
}

/** Pixel-space samples this small are enlarged (nearest) so a person can see them. */
export const MIN_VISIBLE_SIDE = 256;

export async function openGenerator(s: GeneratorSettings): Promise<Generator> {
  const manifest = s.manifest;
  const cfg = manifest.dit.config;
  if (s.policy.steps !== s.steps) {
    throw new ForaError("usage", `the cache policy covers ${s.policy.steps} steps but the run has ${s.steps}`);
  }
  const sampler = makeSampler(s.sampler, s.steps, { learnSigma: cfg.learnSigma });
  const C = cfg.inChannels, S = cfg.inputSize, perSample = C * S * S;
  // A latent model shipped without its VAE yields latents only.
  const canDecode = manifest.vae !== null || C === 1 || C === 3;
  const model: DitStepModel = await openDitStepModel(s.model, manifest, { cfgScale: s.cfg, cfgChannels: s.cfgChannels }, s);
  let vae: Session | null = null;
  try {
    if (manifest.vae) vae = await openSession(join(s.model, vaeGraphFile(s.precision ?? "fp32")), { device: s.device, threads: s.threads });
  } catch (e) {
    await model.release();
    throw e;
  }

  const decode = async (x0: Float32Array, B: number): Promise<Image[]> => {
    if (!canDecode) return [];
    if (!vae) {
      const upscale = Math.max(1, Math.floor(MIN_VISIBLE_SIDE / S));
      return Array.from({ length: B }, (_, b) => toUint8Image(x0.subarray(b * perSample, (b + 1) * perSample), [C, S, S], upscale));
    }
    const out = await vae.run({ latent: f32([B, C, S, S], x0) });
    const [, oc, oh, ow] = out.image.shape;
    const data = out.image.data as Float32Array, n = oc * oh * ow;
    return Array.from({ length: B }, (_, b) => toUint8Image(data.subarray(b * n, (b + 1) * n), [oc, oh, ow]));
  };

  return {
    manifest,
    canDecode,
    sampler,
    latentShape: (batch) => [batch, C, S, S],
    async sampleBatch(req, onStep) {
      const B = req.classes.length;
      const noise = sampleRngs(req.seed, B, req.firstIndex);
      // x_T is always drawn first (the SampleNoise convention), so that with a given xT the
      // sampler's later noise is the seeded run's: a run's own x_T reproduces it.
      const drawn = batchNormals(noise, perSample);
      if (req.xT && req.xT.length !== drawn.length) {
        throw new ForaError("usage", `initial latent has ${req.xT.length} values; this batch needs ${drawn.length}`);
      }
      const step = model.bind(req.classes);
      const t0 = performance.now();
      const denoiser = stopOnAbort(residualDenoiser(step, s.policy, sampler.plan.modelTimes, onStep), req.signal);
      const shape = { batch: B, channels: C, height: S, width: S };
      const x0 = await sampler.sample(denoiser, req.xT ?? drawn, shape, noise);
      const samplingMs = performance.now() - t0;
      const t1 = performance.now();
      const images = await decode(x0, B);
      return { x0, images, samplingMs, decodeMs: performance.now() - t1 };
    },
    async release() {
      await model.release();
      await vae?.release();
    },
  };
}

/** Checks for a stop request before each model call: a step is never cut in half. */
export function stopOnAbort(denoiser: Denoiser, signal?: AbortSignal): Denoiser {
  if (!signal) return denoiser;
  return (x, step) => {
    if (signal.aborted) throw interrupted(signalName(signal));
    return denoiser(x, step);
  };
}
