/**
 * Text embeddings cache (`--embeddings-cache DIR`): each prompt's encoder output, stored as
 * DIR/<key>.npy (float32 [tokens, d_model]), so that the 4.7-billion-parameter T5 encoder runs
 * once per prompt across runs. The key hashes the text the encoder sees (after cleaning) with
 * the encoder's identity: the sha256 of its weight files, its tokenizer and its graph, which
 * the bundle manifest already records. A different encoder, precision or cleaning choice
 * therefore never hits another's entry. Entries are written atomically; an unreadable or
 * mis-shaped entry, or one holding a NaN or infinity, is ignored (and rewritten).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { readNpy, writeNpy } from "../io/npy.ts";
import { firstNonFinite } from "../io/finite.ts";
import { ForaError } from "../errors.ts";

export interface CachedEmbedding {
  /** [tokens, dModel] */
  features: Float32Array;
  tokens: number;
}

export const EMBEDDINGS_CACHE_VERSION = 1;

/** Hex sha256 of (cache version, encoder identity, processed text). */
export function embeddingKey(text: string, encoderId: string): string {
  return createHash("sha256").update(JSON.stringify({ v: EMBEDDINGS_CACHE_VERSION, encoder: encoderId, text })).digest("hex");
}

/** Identity of an encoder: a hash over the sha256s of the files that define its outputs. */
export function encoderIdentity(parts: { path: string; sha256: string }[]): string {
  const h = createHash("sha256");
  for (const p of [...parts].sort((a, b) => a.path.localeCompare(b.path))) h.update(`${p.path}\0${p.sha256}\n`);
  return h.digest("hex");
}

export interface EmbeddingsCache {
  readonly dir: string;
  get(key: string, dModel: number): Promise<CachedEmbedding | null>;
  put(key: string, e: CachedEmbedding, dModel: number): Promise<void>;
}

export async function openEmbeddingsCache(dir: string): Promise<EmbeddingsCache> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new ForaError("io", `--embeddings-cache ${dir}: cannot create the folder (${(e as Error).message})`);
  }
  const path = (key: string) => join(dir, `${key}.npy`);
  return {
    dir,
    async get(key, dModel) {
      try {
        const a = await readNpy(path(key));
        if (a.shape.length !== 2 || a.shape[1] !== dModel || a.shape[0] < 1 || firstNonFinite(a.data) >= 0) return null;
        return { features: a.data, tokens: a.shape[0] };
      } catch {
        return null;
      }
    },
    async put(key, e, dModel) {
      try {
        await writeNpy(path(key), { shape: [e.tokens, dModel], data: e.features });
      } catch (err) {
        throw new ForaError("io", `--embeddings-cache ${dir}: cannot write an entry (${(err as Error).message})`);
      }
    },
  };
}
