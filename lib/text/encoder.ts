/**
 * Prompts to caption features, as PixArt prepares them: preprocessing (caption cleaning, or
 * lower-case and strip), the T5 tokenizer (120 tokens), then the T5 encoder on the real tokens
 * only (padding positions are never attended to, so they are not computed), with the
 * embeddings cache in front when one is given.
 */
import { openSession, type Session } from "../runtime/session.ts";
import type { Device } from "../runtime/session.ts";
import { preprocessPrompt } from "./clean.ts";
import type { T5Tokenizer } from "./tokenizer.ts";
import { embeddingKey, type EmbeddingsCache } from "./embeddings_cache.ts";

export interface EncodedPrompt {
  /** The text the tokenizer saw. */
  text: string;
  /** [tokens, dModel] */
  features: Float32Array;
  tokens: number;
  /** True when the features came from the embeddings cache. */
  cached: boolean;
}

export interface PromptEncoder {
  encode(prompt: string): Promise<EncodedPrompt>;
  /** Encoder runs and cache hits so far. */
  readonly stats: { encoded: number; cacheHits: number; encodeMs: number };
  release(): Promise<void>;
}

export interface PromptEncoderOptions {
  graph: string;
  tokenizer: T5Tokenizer;
  dModel: number;
  maxTokens: number;
  clean: boolean;
  /** Identity of the encoder (see embeddings_cache.ts), for cache keys. */
  encoderId: string;
  cache?: EmbeddingsCache;
  device?: Device;
  threads?: number;
  /** Close the session after each prompt, so that what runs next has its memory (T5-XXL holds 19 GB). */
  closeAfterEach?: boolean;
}

/** The T5 session opens at the first prompt the cache does not hold (a fully cached run never loads the encoder). */
export function openPromptEncoder(o: PromptEncoderOptions): PromptEncoder {
  let session: Session | null = null;
  const stats = { encoded: 0, cacheHits: 0, encodeMs: 0 };
  return {
    stats,
    async encode(prompt) {
      const text = preprocessPrompt(prompt, o.clean);
      const key = embeddingKey(`${o.maxTokens}\0${text}`, o.encoderId);
      const hit = await o.cache?.get(key, o.dModel);
      if (hit) {
        stats.cacheHits++;
        return { text, ...hit, cached: true };
      }
      const t0 = performance.now();
      const tok = o.tokenizer.encode(text, o.maxTokens);
      session ??= await openSession(o.graph, { device: o.device, threads: o.threads });
      const ids = BigInt64Array.from(tok.inputIds.slice(0, tok.length), (v) => BigInt(v));
      const out = await session.run({ input_ids: { dtype: "int64", shape: [1, tok.length], data: ids } });
      const features = out.last_hidden_state.data as Float32Array;
      if (o.closeAfterEach) {
        await session.release();
        session = null;
      }
      stats.encoded++;
      stats.encodeMs += performance.now() - t0;
      await o.cache?.put(key, { features, tokens: tok.length }, o.dModel);
      return { text, features, tokens: tok.length, cached: false };
    },
    async release() {
      await session?.release();
      session = null;
    },
  };
}
