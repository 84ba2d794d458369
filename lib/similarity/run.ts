/**
 * `fora similarity` as a library function: one generation through the literal per-block
 * graph with every step computed in full (no caching, as in the paper's Figure 2), and,
 * for each chosen layer and branch, the cosine similarity between the features of every
 * pair of steps.
 *
 * A feature vector is a block's attention output A_k (after its output projection) or
 * MLP output M_k (after fc2), before gating, for the whole batch the model computes: with
 * guidance, the conditional and unconditional halves together. That is exactly the
 * tensor FORA caches and reuses, so its similarity across steps is what caching relies on.
 */
import { ForaError } from "../errors.ts";
import type { Manifest } from "../bundle/manifest.ts";
import { numTokens } from "../models/dit/config.ts";
import type { SamplingSettings } from "../resolve.ts";
import { staticPolicy } from "../fora/policy.ts";
import { MIN_VISIBLE_SIDE, openGenerator } from "../generator.ts";
import type { Image } from "../io/image.ts";
import type { StepModel } from "../fora/step_model.ts";
import type { Denoiser } from "../samplers/mod.ts";
import { countSketch, exactTrack, type GramTrack, sketchTrack, trackBytes } from "./gram.ts";

export type Branch = "attn" | "mlp";
export const BRANCHES: readonly Branch[] = ["attn", "mlp"];

/** A resolved sampling run on a DiT bundle (lib/resolve.ts) and what to compare. */
export interface SimilarityOptions extends SamplingSettings<Manifest> {
  classes: number[];
  seed: number;
  /** Block indices; default all. */
  layers?: number[];
  branches?: readonly Branch[];
  /** Bytes the feature store may use; exact when it fits, else the sketch. */
  maxMemory: number;
  sketchDim: number;
  sketchSeed: number;
  signal?: AbortSignal;
  /** After each step k (0-based, execution order). */
  onStep?: (k: number, steps: number) => void;
}

export interface Track {
  layer: number;
  branch: Branch;
  /** S x S cosine similarities, row-major; entry (i, j) compares steps k = i and k = j. */
  matrix: Float64Array;
}

export interface MemoryPlan {
  mode: "exact" | "sketch";
  /** Values per feature vector (modelBatch x tokens x hidden). */
  featureSize: number;
  /** k, with the sketch. */
  sketchDim: number | null;
  /** Bytes kept for all tracks (vectors or sketches, plus the sketch's hash table). */
  storeBytes: number;
  /** Bytes held per step regardless of mode: the per-block graph's inputs and outputs. */
  stepBytes: number;
  /** What exact storage would have needed. */
  exactBytes: number;
}

export interface SimilarityResult {
  model: string;
  steps: number;
  /** Model timestep of each step k. */
  modelTimes: number[];
  layers: number[];
  branches: Branch[];
  depth: number;
  memory: MemoryPlan;
  sketchSeed: number | null;
  tracks: Track[];
  /** The generated samples (empty when the bundle cannot decode). */
  images: Image[];
}

/** Decides exact or sketch storage before anything runs. */
export function planMemory(
  o: { steps: number; featureSize: number; depth: number; tracks: number; maxMemory: number; sketchDim: number },
): MemoryPlan {
  const stepBytes = 4 * o.depth * o.featureSize * 4; // cached_attn, cached_mlp inputs; attn, mlp outputs
  const exactBytes = o.tracks * trackBytes(o.steps, o.featureSize);
  if (exactBytes + stepBytes <= o.maxMemory) {
    return { mode: "exact", featureSize: o.featureSize, sketchDim: null, storeBytes: exactBytes, stepBytes, exactBytes };
  }
  if (o.sketchDim >= o.featureSize) {
    throw new ForaError(
      "usage",
      `--max-memory ${mib(o.maxMemory)} is too small for exact similarities (${mib(exactBytes + stepBytes)} needed) and ` +
        `--sketch-dim ${o.sketchDim} is not below the feature size ${o.featureSize}; raise --max-memory or lower --sketch-dim`,
    );
  }
  const storeBytes = o.tracks * trackBytes(o.steps, o.featureSize, o.sketchDim) + 4 * o.featureSize;
  if (storeBytes + stepBytes > o.maxMemory) {
    throw new ForaError(
      "usage",
      `--max-memory ${mib(o.maxMemory)} is too small even for the ${o.sketchDim}-dimension sketch (${
        mib(storeBytes + stepBytes)
      } needed); ` +
        `raise --max-memory, or lower --sketch-dim, --steps or the number of --layers`,
    );
  }
  return { mode: "sketch", featureSize: o.featureSize, sketchDim: o.sketchDim, storeBytes, stepBytes, exactBytes };
}

export async function similarityRun(opts: SimilarityOptions): Promise<SimilarityResult> {
  const cfg = opts.manifest.dit.config;
  const L = cfg.depth;
  const layers = opts.layers ?? Array.from({ length: L }, (_, i) => i);
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) {
      throw new ForaError("usage", `--layers: block ${l} does not exist; this model has blocks 0..${L - 1}`);
    }
  }
  const branches = [...(opts.branches ?? BRANCHES)];
  const B = opts.classes.length, guided = opts.cfg !== 1;
  const featureSize = (guided ? 2 * B : B) * numTokens(cfg) * cfg.hiddenSize;
  const S = opts.steps;
  const memory = planMemory({
    steps: S,
    featureSize,
    depth: L,
    tracks: layers.length * branches.length,
    maxMemory: opts.maxMemory,
    sketchDim: opts.sketchDim,
  });
  const sketch = memory.mode === "sketch" ? countSketch(featureSize, memory.sketchDim!, opts.sketchSeed) : null;
  const grams = new Map<string, GramTrack>();
  for (const l of layers) for (const b of branches) grams.set(`${l}.${b}`, sketch ? sketchTrack(S, sketch) : exactTrack(S, featureSize));

  // Every step computed in full: the features of each step are the model's own, uncached.
  const gen = await openGenerator({ ...opts, policy: staticPolicy(S, 1) });
  let images: Image[];
  try {
    const computeAll = Array<boolean>(L).fill(false);
    const noCache = new Float32Array(L * featureSize);
    const denoiser = (step: StepModel): Denoiser => async (x, st) => {
      const r = await step.blocks(x, st.modelTime, computeAll, noCache, noCache);
      for (const l of layers) {
        for (const b of branches) {
          const all = b === "attn" ? r.attn : r.mlp;
          grams.get(`${l}.${b}`)!.add(all.subarray(l * featureSize, (l + 1) * featureSize));
        }
      }
      opts.onStep?.(st.k, S);
      return r.out;
    };
    // The report shows samples at half the size `fora generate` enlarges pixel-space ones to.
    const enlarge = (height: number) => Math.max(1, Math.floor(MIN_VISIBLE_SIDE / 2 / height));
    const req = { classes: opts.classes, seed: opts.seed, firstIndex: 0, signal: opts.signal };
    images = (await gen.sampleBatch(req, undefined, { denoiser, enlarge })).images;
  } finally {
    await gen.release();
  }
  const tracks: Track[] = [];
  for (const l of layers) for (const b of branches) tracks.push({ layer: l, branch: b, matrix: grams.get(`${l}.${b}`)!.cosine() });
  return {
    model: opts.model,
    steps: S,
    modelTimes: gen.sampler.plan.modelTimes,
    layers,
    branches,
    depth: L,
    memory,
    sketchSeed: sketch ? opts.sketchSeed : null,
    tracks,
    images,
  };
}

export function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(2)} GiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}
