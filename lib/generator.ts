/**
 * The sampling core every sampling command shares, for DiT and PixArt-alpha bundles alike:
 * a bundle's sessions opened once, then batches sampled with FORA caching and decoded to
 * 8-bit images. Nothing here writes files or events; callers get per-step reports and images.
 *
 * The pieces stay apart: the sampler only sees a Denoiser; the planner (lib/fora) turns the
 * cache policy into that Denoiser over the step model. The two families differ only in how
 * a batch is prepared (a `Family`): DiT binds the batch's class labels; PixArt-alpha encodes
 * the prompts and samples them in groups of one caption length (lib/models/pixart/batches.ts).
 */
import { signalName } from "./events/steps.ts";
import { join } from "node:path";
import { ForaError, interrupted } from "./errors.ts";
import { type Manifest, vaeGraphFile } from "./bundle/manifest.ts";
import type { AnyManifest, RunSettings } from "./resolve.ts";
import { openDitStepModel } from "./models/dit/step_model.ts";
import { openPixartBatches, type TextOptions } from "./models/pixart/batches.ts";
import { residualDenoiser, type StepListener } from "./fora/denoiser.ts";
import type { StepModel } from "./fora/step_model.ts";
import { type Denoiser, makeSampler, type Sampler } from "./samplers/mod.ts";
import { batchNormals, sampleRngs } from "./random/mod.ts";
import { type Image, toUint8Image } from "./io/image.ts";
import { resizeAndCrop } from "./io/resize.ts";
import { upscaleFactor } from "./models/vae/config.ts";
import { f32, openSession, type Session } from "./runtime/session.ts";
import { firstNonFinite } from "./io/finite.ts";
import { bytes } from "./bundle/info.ts";

/** A run as lib/resolve.ts returns it, plus PixArt-alpha's text options (ignored by DiT bundles). */
export type GeneratorSettings<M extends AnyManifest = AnyManifest> = RunSettings<M> & TextOptions & {
  /** Aborted (with the signal name as reason) while the sessions open: they are released and the open fails as interrupted. */
  signal?: AbortSignal;
};

export interface BatchRequest {
  /** Class ids, one per sample (DiT bundles). */
  classes?: number[];
  /** Prompts, one per sample (PixArt-alpha bundles). */
  prompts?: string[];
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

/** How much to enlarge (nearest) a decoded image of this height; `fromVae`: the VAE made it (else a pixel-space sample). */
export type Enlarge = (height: number, fromVae: boolean) => number;

export interface SampleOptions {
  /** Replaces FORA's cached denoiser (the similarity analysis runs the literal per-block path). */
  denoiser?: (model: StepModel) => Denoiser;
  /** Default: pixel-space samples enlarged to MIN_VISIBLE_SIDE, VAE output as it is. */
  enlarge?: Enlarge;
}

export interface Generator {
  readonly manifest: AnyManifest;
  /** False for a latent-space bundle without a VAE: batches then yield no images. */
  readonly canDecode: boolean;
  readonly sampler: Sampler;
  /** Pixel size the model samples at (the decoded image's, before any resize or enlarging). */
  readonly sampledSize: { width: number; height: number };
  /** Shape of one batch's latent, [B, C, H, W]. */
  latentShape(batch: number): [number, number, number, number];
  sampleBatch(req: BatchRequest, onStep?: StepListener, opts?: SampleOptions): Promise<BatchResult>;
  release(): Promise<void>;
}

/**
 * What a model family does for the core: the batch's size, and the batch prepared as groups
 * of samples that share one model call per step (`bind` binds a group's conditioning).
 */
interface Family {
  size(req: BatchRequest): number;
  prepare(req: BatchRequest): Promise<{ samples: number[]; bind(): Promise<StepModel> }[]>;
  release(): Promise<void>;
}

/** Pixel-space samples this small are enlarged (nearest) so a person can see them. */
export const MIN_VISIBLE_SIDE = 256;

const forViewing: Enlarge = (height, fromVae) => (fromVae ? 1 : Math.max(1, Math.floor(MIN_VISIBLE_SIDE / height)));

export async function openGenerator(s: GeneratorSettings): Promise<Generator> {
  const manifest = s.manifest;
  const cfg = manifest.architecture === "dit" ? manifest.dit.config : manifest.pixart.config;
  if (s.policy.steps !== s.steps) {
    throw new ForaError("usage", `the cache policy covers ${s.policy.steps} steps but the run has ${s.steps}`);
  }
  // PixArt's DDIM steps as diffusers' DDIMScheduler does with the pipeline's scheduler config; DiT's respaces as DiT does
  const diffusersDdim = manifest.architecture === "pixart" ? manifest.pixart.scheduler : undefined;
  const sampler = makeSampler(s.sampler, s.steps, { learnSigma: cfg.learnSigma, diffusersDdim });
  const C = cfg.inChannels;
  // PixArt bundles sample at other sizes through a size's own graph set (lib/models/pixart/sizes.ts)
  const { height: H, width: W } = s.sized?.latent ?? { height: cfg.inputSize, width: cfg.inputSize };
  const perSample = C * H * W;
  // A latent model shipped without its VAE yields latents only.
  const canDecode = manifest.vae !== null || C === 1 || C === 3;
  const family = manifest.architecture === "dit" ? await ditFamily({ ...s, manifest }) : await openPixartBatches({ ...s, manifest });
  let vae: Session | null = null;
  try {
    // PixArt's VAE without the CPU arena: after a 1024-px decode the arena kept 3.3 GiB into the next prompt's T5 encoding
    const cpuArena = manifest.architecture !== "pixart";
    if (manifest.vae) {
      vae = await openSession(join(s.sized?.dir ?? s.model, vaeGraphFile(s.precision)), { device: s.device, threads: s.threads, cpuArena });
    }
    // Opening sessions takes seconds for a large model: a signal that came meanwhile stops here, before any sampling.
    // Signal listeners run as event-loop tasks, after this function's own continuations: one turn of the loop first.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (s.signal?.aborted) throw interrupted(signalName(s.signal));
  } catch (e) {
    await vae?.release();
    await family.release();
    throw e;
  }

  const decode = async (x0: Float32Array, B: number, enlarge: Enlarge): Promise<Image[]> => {
    if (!canDecode) return [];
    if (!vae) {
      const up = enlarge(H, false);
      return Array.from({ length: B }, (_, b) => toUint8Image(x0.subarray(b * perSample, (b + 1) * perSample), [C, H, W], up));
    }
    const out = await vae.run({ latent: f32([B, C, H, W], x0) });
    const [, oc, oh, ow] = out.image.shape;
    const data = out.image.data as Float32Array, n = oc * oh * ow, up = enlarge(oh, true);
    const to = s.sized?.output ?? { width: ow, height: oh };
    return Array.from({ length: B }, (_, b) => {
      const image = resizeAndCrop(data.subarray(b * n, (b + 1) * n), [oc, oh, ow], to.width, to.height);
      return toUint8Image(image, [oc, to.height, to.width], up);
    });
  };

  return {
    manifest,
    canDecode,
    sampler,
    sampledSize: manifest.vae
      ? { width: W * upscaleFactor(manifest.vae.config), height: H * upscaleFactor(manifest.vae.config) }
      : { width: W, height: H },
    latentShape: (batch) => [batch, C, H, W],
    async sampleBatch(req, onStep, opts = {}) {
      const B = family.size(req);
      checkBatchMemory(manifest, B, s.cfg !== 1);
      const noise = sampleRngs(req.seed, B, req.firstIndex);
      // x_T is always drawn first (the SampleNoise convention), so that with a given xT the
      // sampler's later noise is the seeded run's: a run's own x_T reproduces it.
      const drawn = batchNormals(noise, perSample);
      if (req.xT && req.xT.length !== drawn.length) {
        throw new ForaError("usage", `initial latent has ${req.xT.length} values; this batch needs ${drawn.length}`);
      }
      const xT = req.xT ?? drawn;
      const groups = await family.prepare(req);
      const t0 = performance.now();
      const x0 = new Float32Array(B * perSample);
      for (const group of groups) {
        const model = await group.bind();
        const G = group.samples.length, xg = new Float32Array(G * perSample);
        group.samples.forEach((i, g) => xg.set(xT.subarray(i * perSample, (i + 1) * perSample), g * perSample));
        const denoiser = opts.denoiser?.(model) ?? residualDenoiser(model, s.policy, sampler.plan.modelTimes, onStep);
        const shape = { batch: G, channels: C, height: H, width: W };
        const steps = sampler.plan.modelTimes.length;
        const run = finiteSteps(stopOnAbort(denoiser, req.signal), steps);
        const out = await sampler.sample(run, xg, shape, group.samples.map((i) => noise[i]));
        if (firstNonFinite(out) >= 0) throw nonFiniteStep(steps, steps);
        group.samples.forEach((i, g) => x0.set(out.subarray(g * perSample, (g + 1) * perSample), i * perSample));
      }
      const samplingMs = performance.now() - t0;
      const t1 = performance.now();
      const images = await decode(x0, B, opts.enlarge ?? forViewing);
      return { x0, images, samplingMs, decodeMs: performance.now() - t1 };
    },
    async release() {
      await family.release();
      await vae?.release();
    },
  };
}

/**
 * A lower estimate of the memory one batch of `batch` samples takes, in bytes: per model row
 * (two per sample with guidance) the block activations (about 16 values a token and channel:
 * q, k, v, the 4x MLP hidden, the residual stream), the attention scores (two per head and
 * token pair) and the cached features (attention and MLP outputs of every block, for one
 * reuse step); per sample the VAE's first-block activations at full resolution.
 */
export function batchBytes(manifest: AnyManifest, batch: number, guided: boolean): number {
  const c = manifest.architecture === "dit" ? manifest.dit.config : manifest.pixart.config;
  const T = (c.inputSize / c.patchSize) ** 2, D = c.hiddenSize;
  const row = T * D * (16 + 2 * c.depth) + 2 * c.numHeads * T * T;
  const channels = manifest.vae?.config.blockOutChannels ?? [];
  const side = c.inputSize * 2 ** Math.max(channels.length - 1, 0);
  const vae = channels.length ? 3 * channels[0] * side * side : 0;
  return 4 * batch * ((guided ? 2 : 1) * row + vae);
}

/** Refuses a batch that cannot fit in this machine's memory before anything of it is allocated. */
function checkBatchMemory(manifest: AnyManifest, batch: number, guided: boolean): void {
  const need = batchBytes(manifest, batch, guided), total = Deno.systemMemoryInfo().total;
  if (need > total) {
    throw new ForaError(
      "usage",
      `a batch of ${batch} samples needs at least ${bytes(need)} of memory, more than this machine's ${bytes(total)}; ` +
        "use a smaller --batch",
    );
  }
}

/** DiT: the batch's class labels bound to the step model, all samples in one group. */
async function ditFamily(s: GeneratorSettings<Manifest>): Promise<Family> {
  const model = await openDitStepModel(s.model, s.manifest, { cfgScale: s.cfg, cfgChannels: s.cfgChannels }, s);
  const classes = (req: BatchRequest) => req.classes ?? [];
  return {
    size: (req) => classes(req).length,
    prepare: (req) => Promise.resolve([{ samples: classes(req).map((_, i) => i), bind: () => Promise.resolve(model.bind(classes(req))) }]),
    release: () => model.release(),
  };
}

/**
 * Checks the latent going into each step and the model output coming out of it: one pass
 * over values the step already touches, so a weight, a guidance scale or an input that
 * overflows ends the run at the step it happened instead of as a black image.
 */
function finiteSteps(denoiser: Denoiser, steps: number): Denoiser {
  return async (x, step) => {
    if (firstNonFinite(x) >= 0) {
      if (step.k === 0) throw new ForaError("runtime", "the initial latent holds non-finite values (NaN or infinity); check --latents-in");
      throw nonFiniteStep(step.k, steps);
    }
    const out = await denoiser(x, step);
    if (firstNonFinite(out) >= 0) throw nonFiniteStep(step.k + 1, steps);
    return out;
  };
}

/** Step `n` (1-based, in execution order) of `steps` overflowed. */
function nonFiniteStep(n: number, steps: number): ForaError {
  return new ForaError(
    "runtime",
    `step ${n} of ${steps} produced non-finite values (NaN or infinity) in the latent; no image was written ` +
      "(check the weights the bundle was converted from for NaN or infinity, or lower --cfg)",
  );
}

/** Checks for a stop request before each model call: a step is never cut in half. */
export function stopOnAbort(denoiser: Denoiser, signal?: AbortSignal): Denoiser {
  if (!signal) return denoiser;
  return (x, step) => {
    if (signal.aborted) throw interrupted(signalName(signal));
    return denoiser(x, step);
  };
}
