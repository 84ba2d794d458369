/**
 * How a PixArt batch is prepared for the sampling core (lib/generator.ts): the prompts
 * are encoded (T5, through the embeddings cache) and bound to the step model.
 *
 * Captions enter the graphs without padding or mask, so the samples of one model call must
 * share a caption length: a batch whose prompts differ in length is sampled as one group per
 * length (each sample keeps its own noise generator, so the result does not depend on the
 * grouping). The unconditional caption is the manifest's: T5("") (one token, diffusers
 * weights) or the learned null caption cut to the prompt's length (original weights; the
 * reference reuses the prompt's mask for it).
 */
import { basename, join } from "node:path";
import { ForaError } from "../../errors.ts";
import type { RunSettings } from "../../resolve.ts";
import { pixartGraphPath, type PixartManifest, t5GraphPath } from "../../bundle/pixart_manifest.ts";
import { floatPrecision } from "../../bundle/manifest.ts";
import type { StepModel } from "../../fora/step_model.ts";
import { readSafetensorsHeader, readTensorF32 } from "../../weights/safetensors.ts";
import { loadT5Tokenizer, SPIECE_FILE, TOKENIZER_JSON_FILE } from "../../text/tokenizer.ts";
import { type EncodedPrompt, openPromptEncoder } from "../../text/encoder.ts";
import { encoderIdentity, openEmbeddingsCache } from "../../text/embeddings_cache.ts";
import { openPixartStepModel, type PixartStepModel } from "./step_model.ts";
import { pixartMemoryInputs, planPixartMemory } from "./memory.ts";
import type { SizedGraphs } from "./sizes.ts";

/** PixArt-α's text-conditioning options (lib/generator.ts's settings carry them). */
export interface TextOptions {
  /** Caption cleaning before tokenizing (the reference's default); off: lower-case and strip only. */
  cleanCaption?: boolean;
  /** Cross-attention cached like self-attention on reuse steps (default), or recomputed. */
  cacheCrossAttention?: boolean;
  /** Folder of the text embeddings cache. */
  embeddingsCache?: string;
  /** Step and VAE graphs for a size other than the trained one (lib/models/pixart/sizes.ts). */
  sized?: SizedGraphs;
}

/** The prompts of one batch and how its samples are grouped; lib/generator.ts's Family for PixArt bundles. */
export interface PixartBatches {
  size(req: { prompts?: string[] }): number;
  prepare(req: { prompts?: string[] }): Promise<{ samples: number[]; bind(): Promise<StepModel> }[]>;
  release(): Promise<void>;
}

/**
 * Opens the text encoder and the step model of a PixArt bundle; per batch, the prompts are
 * encoded (through the embeddings cache) and grouped by caption length, and each group
 * binds its caption features (and the unconditional caption's) to the step model.
 */
export async function openPixartBatches(s: RunSettings<PixartManifest> & TextOptions): Promise<PixartBatches> {
  const manifest = s.manifest;
  const cfg = manifest.pixart.config;
  const precision = floatPrecision(s.precision); // resolveRun refuses int8 for PixArt bundles
  // before anything loads: a run that cannot fit is refused with its size, one that fits only phased closes T5 after each prompt
  const memory = s.device === "cpu" ? planPixartMemory(s.model, pixartMemoryInputs(manifest, 1, s.sized?.latent)) : null;
  const Dc = cfg.captionChannels;
  const tokenizer = await loadT5Tokenizer(join(s.model, manifest.textEncoder.tokenizer));
  const t5Graph = t5GraphPath(s.model, manifest, precision);
  const idFiles = new Set([
    ...manifest.textEncoder.weights.files,
    // Whichever tokenizer files the bundle holds: the cache must not outlive a changed vocabulary.
    `${manifest.textEncoder.tokenizer}/${SPIECE_FILE}`,
    `${manifest.textEncoder.tokenizer}/${TOKENIZER_JSON_FILE}`,
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
  let step: PixartStepModel;
  try {
    step = await openPixartStepModel(
      cfg,
      (kind, guided) => {
        const path = pixartGraphPath(s.model, manifest, { kind, guidance: guided ? "cfg" : "plain", precision });
        return kind === "text" || !s.sized?.dir ? path : join(s.sized.dir, basename(path));
      },
      { cfgScale: s.cfg, cfgChannels: s.cfgChannels },
      { ...s, latent: s.sized?.latent },
    );
  } catch (e) {
    await encoder.release();
    throw e;
  }
  const cacheCross = s.cacheCrossAttention ?? true;

  const unconditional = async (n: number, B: number): Promise<{ features: Float32Array; tokens: number }> => {
    const one = nullCaption ? { features: nullCaption.subarray(0, n * Dc), tokens: n } : await encoder.encode("");
    const features = new Float32Array(B * one.tokens * Dc);
    for (let b = 0; b < B; b++) features.set(one.features, b * one.tokens * Dc);
    return { features, tokens: one.tokens };
  };

  return {
    size: (req) => (req.prompts ?? []).length,
    async prepare(req) {
      const encoded: EncodedPrompt[] = [];
      for (const p of req.prompts ?? []) encoded.push(await encoder.encode(p));
      return groupsByLength(encoded).map((group) => ({
        samples: group,
        async bind() {
          const G = group.length, n = encoded[group[0]].tokens;
          const cond = new Float32Array(G * n * Dc);
          group.forEach((i, g) => cond.set(encoded[i].features, g * n * Dc));
          const uncond = step.guided ? await unconditional(n, G) : { features: new Float32Array(0), tokens: 0 };
          return await step.bind(G, { cond, condTokens: n, uncond: uncond.features, uncondTokens: uncond.tokens }, { cacheCross });
        },
      }));
    },
    async release() {
      await step.release();
      await encoder.release();
    },
  };
}

/** Sample indices grouped by caption length, in order of first appearance. */
export function groupsByLength(encoded: { tokens: number }[]): number[][] {
  const groups = new Map<number, number[]>();
  encoded.forEach((e, i) => groups.set(e.tokens, [...(groups.get(e.tokens) ?? []), i]));
  return [...groups.values()];
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
