/**
 * The sampling core for PixArt-alpha bundles, the text-to-image counterpart of lib/generator.ts:
 * sessions opened once; per batch the prompts are encoded (T5, through the embeddings cache),
 * bound to the step model, sampled with FORA caching and decoded by the VAE.
 *
 * Captions enter the graphs without padding or mask, so the samples of one model call must
 * share a caption length: a batch whose prompts differ in length is sampled as one group per
 * length (each sample keeps its own noise generator, so the result does not depend on the
 * grouping). The unconditional caption is the manifest's: T5("") (one token, diffusers
 * weights) or the learned null caption cut to the prompt's length (original weights; the
 * reference reuses the prompt's mask for it).
 */
import { join } from "node:path";
import { ForaError } from "../../errors.ts";
import { type GeneratorSettings, stopOnAbort } from "../../generator.ts";
import { pixartGraphPath, type PixartManifest, readPixartManifest, t5GraphPath } from "../../bundle/pixart.ts";
import { vaeGraphFile } from "../../bundle/manifest.ts";
import { residualDenoiser, type StepListener } from "../../fora/denoiser.ts";
import { makeSampler, type Sampler } from "../../samplers/mod.ts";
import { batchNormals, sampleRngs } from "../../random/mod.ts";
import { type Image, toUint8Image } from "../../io/image.ts";
import { f32, openSession, type Session } from "../../runtime/session.ts";
import { readSafetensorsHeader, readTensorF32 } from "../../weights/safetensors.ts";
import { loadT5Tokenizer } from "../../text/tokenizer.ts";
import { type EncodedPrompt, openPromptEncoder, type PromptEncoder } from "../../text/encoder.ts";
import { encoderIdentity, openEmbeddingsCache } from "../../text/embeddings_cache.ts";
import { openPixartStepModel, type PixartStepModel } from "./step_model.ts";
import { pixartMemoryInputs, planPixartMemory } from "./memory.ts";

/** The DiT generator's settings, plus the text-conditioning options of PixArt-α. */
export interface PixartGeneratorSettings extends GeneratorSettings {
  /** Caption cleaning before tokenizing (the reference's default); off: lower-case and strip only. */
  cleanCaption?: boolean;
  /** Cross-attention cached like self-attention on reuse steps (default), or recomputed. */
  cacheCrossAttention?: boolean;
  /** Folder of the text embeddings cache. */
  embeddingsCache?: string;
}

export interface PixartBatchRequest {
  prompts: string[];
  seed: number;
  firstIndex: number;
  xT?: Float32Array;
  signal?: AbortSignal;
}

export interface PixartBatchResult {
  x0: Float32Array;
  images: Image[];
  samplingMs: number;
  decodeMs: number;
  /** Prompt encoding (tokenizer + T5, or cache reads). */
  textMs: number;
  /** The text each prompt was tokenized as. */
  texts: string[];
}

export interface PixartGenerator {
  readonly manifest: PixartManifest;
  readonly canDecode: boolean;
  readonly sampler: Sampler;
  readonly encoder: PromptEncoder;
  latentShape(batch: number): [number, number, number, number];
  sampleBatch(req: PixartBatchRequest, onStep?: StepListener): Promise<PixartBatchResult>;
  release(): Promise<void>;
}

export async function openPixartGenerator(s: PixartGeneratorSettings): Promise<PixartGenerator> {
  const manifest = await readPixartManifest(s.model);
  const cfg = manifest.pixart.config;
  if (s.plan.kinds.length !== s.steps) {
    throw new ForaError("usage", `the cache plan covers ${s.plan.kinds.length} steps but the run has ${s.steps}`);
  }
  const precision = s.precision ?? "fp32";
  const memory = (s.device ?? "cpu") === "cpu" ? planPixartMemory(s.model, pixartMemoryInputs(manifest)) : null;
  const sampler = makeSampler(s.sampler, s.steps, { learnSigma: cfg.learnSigma });
  const C = cfg.inChannels, S = cfg.inputSize, perSample = C * S * S, Dc = cfg.captionChannels;
  const tokenizer = await loadT5Tokenizer(join(s.model, manifest.textEncoder.tokenizer));
  const t5Graph = t5GraphPath(s.model, manifest, precision);
  const idFiles = new Set([
    ...manifest.textEncoder.weights.files,
    `${manifest.textEncoder.tokenizer}/tokenizer.json`,
    t5Graph.slice(s.model.length + 1),
  ]);
  const encoder = openPromptEncoder({
    graph: t5Graph,
    tokenizer,
    dModel: Dc,
    maxTokens: manifest.pixart.conventions.maxTokens,
    clean: s.cleanCaption ?? true,
    encoderId: encoderIdentity(manifest.files.filter((f) => idFiles.has(f.path))),
    cache: s.embeddingsCache ? await openEmbeddingsCache(s.embeddingsCache) : undefined,
    device: s.device,
    threads: s.threads,
    closeAfterEach: memory?.releaseEncoder,
  });
  const nullCaption = manifest.pixart.conventions.unconditional === "null-caption" ? await readNullCaption(s.model, manifest) : null;
  let model: PixartStepModel | null = null;
  let vae: Session | null = null;
  try {
    model = await openPixartStepModel(
      cfg,
      (kind, guided) => pixartGraphPath(s.model, manifest, { kind, guidance: guided ? "cfg" : "plain", precision }),
      { cfgScale: s.cfg, cfgChannels: s.cfgChannels },
      s,
    );
    if (manifest.vae) {
      vae = await openSession(join(s.model, vaeGraphFile(precision)), { device: s.device, threads: s.threads, cpuArena: false });
    }
  } catch (e) {
    await model?.release();
    await encoder.release();
    throw e;
  }
  const step = model;
  const cacheCross = s.cacheCrossAttention ?? true;

  const unconditional = async (n: number, B: number): Promise<{ features: Float32Array; tokens: number }> => {
    const one = nullCaption ? { features: nullCaption.subarray(0, n * Dc), tokens: n } : await encoder.encode("");
    const features = new Float32Array(B * one.tokens * Dc);
    for (let b = 0; b < B; b++) features.set(one.features, b * one.tokens * Dc);
    return { features, tokens: one.tokens };
  };

  return {
    manifest,
    canDecode: vae !== null,
    sampler,
    encoder,
    latentShape: (batch) => [batch, C, S, S],
    async sampleBatch(req, onStep) {
      const B = req.prompts.length;
      const noise = sampleRngs(req.seed, B, req.firstIndex);
      const drawn = batchNormals(noise, perSample);
      if (req.xT && req.xT.length !== drawn.length) {
        throw new ForaError("usage", `initial latent has ${req.xT.length} values; this batch needs ${drawn.length}`);
      }
      const xT = req.xT ?? drawn;
      const tText = performance.now();
      const encoded: EncodedPrompt[] = [];
      for (const p of req.prompts) encoded.push(await encoder.encode(p));
      const textMs = performance.now() - tText;

      const x0 = new Float32Array(B * perSample);
      const t0 = performance.now();
      for (const group of groupsByLength(encoded)) {
        const G = group.length, n = encoded[group[0]].tokens;
        const cond = new Float32Array(G * n * Dc);
        group.forEach((i, g) => cond.set(encoded[i].features, g * n * Dc));
        const uncond = step.guided ? await unconditional(n, G) : { features: new Float32Array(0), tokens: 0 };
        const bound = await step.bind(G, { cond, condTokens: n, uncond: uncond.features, uncondTokens: uncond.tokens }, { cacheCross });
        const xg = new Float32Array(G * perSample);
        group.forEach((i, g) => xg.set(xT.subarray(i * perSample, (i + 1) * perSample), g * perSample));
        const denoiser = stopOnAbort(residualDenoiser(bound, s.policy ?? s.plan, sampler.plan.modelTimes, onStep), req.signal);
        const out = await sampler.sample(denoiser, xg, { batch: G, channels: C, height: S, width: S }, group.map((i) => noise[i]));
        group.forEach((i, g) => x0.set(out.subarray(g * perSample, (g + 1) * perSample), i * perSample));
      }
      const samplingMs = performance.now() - t0;
      const t1 = performance.now();
      const images = vae ? await decode(vae, x0, B, C, S) : [];
      return { x0, images, samplingMs, decodeMs: performance.now() - t1, textMs, texts: encoded.map((e) => e.text) };
    },
    async release() {
      await step.release();
      await encoder.release();
      await vae?.release();
    },
  };
}

/** Sample indices grouped by caption length, in order of first appearance. */
export function groupsByLength(encoded: { tokens: number }[]): number[][] {
  const groups = new Map<number, number[]>();
  encoded.forEach((e, i) => groups.set(e.tokens, [...(groups.get(e.tokens) ?? []), i]));
  return [...groups.values()];
}

async function decode(vae: Session, x0: Float32Array, B: number, C: number, S: number): Promise<Image[]> {
  const out = await vae.run({ latent: f32([B, C, S, S], x0) });
  const [, oc, oh, ow] = out.image.shape;
  const data = out.image.data as Float32Array, n = oc * oh * ow;
  return Array.from({ length: B }, (_, b) => toUint8Image(data.subarray(b * n, (b + 1) * n), [oc, oh, ow]));
}

/** The learned null caption [maxTokens, captionChannels] from the bundle's transformer weights. */
async function readNullCaption(dir: string, m: PixartManifest): Promise<Float32Array> {
  for (const file of m.pixart.weights.files) {
    const ref = (await readSafetensorsHeader(join(dir, file))).tensors.get("y_embedder.y_embedding");
    if (!ref) continue;
    const data = await readTensorF32(ref);
    const { maxTokens, captionChannels } = m.pixart.config;
    if (data.length !== maxTokens * captionChannels) {
      throw new ForaError("bundle", `${dir}: y_embedder.y_embedding has ${data.length} values, expected ${maxTokens} x ${captionChannels}`);
    }
    return data;
  }
  throw new ForaError("bundle", `${dir}: the manifest says "null-caption" but the PixArt weights hold no y_embedder.y_embedding`);
}
