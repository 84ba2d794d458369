/**
 * The T5 tokenizer as PixArt calls it: `tokenizer(text, max_length=120, padding="max_length",
 * truncation=True, add_special_tokens=True)`. The pieces come from the checkpoint's
 * `spiece.model` (what the slow T5Tokenizer reads) or from its `tokenizer.json`; both are
 * encoded by lib/text/sentencepiece.ts and give the same ids. Truncation
 * keeps max_length - 1 pieces and appends `</s>`, padding fills with `<pad>` and a 0 in the
 * attention mask.
 */
import { join } from "node:path";
import { ForaError } from "../errors.ts";
import { parseSentencePieceModel, PieceType, sentencePieceEncoder, type SentencePieceModel } from "./sentencepiece.ts";

/** PixArt-alpha's caption length (tokens, `</s>` included). */
export const PIXART_MAX_TOKENS = 120;

export interface TokenizedPrompt {
  /** maxLength ids: the pieces, `</s>`, then `<pad>`. */
  inputIds: number[];
  /** 1 for each real token (`</s>` included), 0 for padding. */
  attentionMask: number[];
  /** Real tokens: the encoder only needs inputIds.slice(0, length). */
  length: number;
}

export interface T5Tokenizer {
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;
  encode(text: string, maxLength?: number): TokenizedPrompt;
}

/** Reads DIR/spiece.model (the slow T5Tokenizer's file, what diffusers' PixArt pipelines load) or DIR/tokenizer.json, with DIR/tokenizer_config.json when present. */
export async function loadT5Tokenizer(dir: string): Promise<T5Tokenizer> {
  const config = await Deno.readTextFile(join(dir, "tokenizer_config.json")).then((t) => JSON.parse(t), () => ({}));
  const spm = join(dir, SPIECE_FILE);
  const bytes = await Deno.readFile(spm).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ForaError("io", `${spm}: cannot read: ${(e as Error).message}`);
  });
  if (bytes) return t5TokenizerFromSentencePiece(bytes, config, spm);
  const path = join(dir, TOKENIZER_JSON_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ForaError("bundle", `${dir}: no ${SPIECE_FILE} or ${TOKENIZER_JSON_FILE} here (give the pipeline's tokenizer/ folder)`);
    }
    throw new ForaError("io", `${path}: cannot read: ${(e as Error).message}`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ForaError("bundle", `${path}: not valid JSON (${(e as Error).message})`);
  }
  return t5TokenizerFromJson(json, config, path);
}

/** The files a T5 tokenizer folder may hold; loadT5Tokenizer prefers the first. */
export const SPIECE_FILE = "spiece.model";
export const TOKENIZER_JSON_FILE = "tokenizer.json";

/** Python's str.isspace(): the whitespace T5Tokenizer strips on both sides of a sentinel. */
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING_SPACE = new RegExp(`^[${PY_SPACE}]+`), TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);
const SENTINEL = /^<extra_id_\d+>$/;

/** A token name in tokenizer_config.json: a string, or an AddedToken object with its content. */
function tokenName(v: unknown, fallback: string): string {
  if (typeof v === "string") return v;
  const content = typeof v === "object" && v !== null ? (v as { content?: unknown }).content : undefined;
  return typeof content === "string" ? content : fallback;
}

/** Reads spiece.model: `extra_ids` sentinels (tokenizer_config.json, 100 by default) take the ids after the pieces, `<extra_id_0>` last. */
export function t5TokenizerFromSentencePiece(bytes: Uint8Array, config: Record<string, unknown>, where: string): T5Tokenizer {
  const model = parseSentencePieceModel(bytes, where);
  const extraIds = config.extra_ids ?? 100;
  if (!Number.isSafeInteger(extraIds) || (extraIds as number) < 0) {
    throw new ForaError("bundle", `${where}: tokenizer_config.json: extra_ids must be a non-negative integer`);
  }
  const size = model.pieces.length, n = extraIds as number;
  const added = new Map<string, number>();
  for (const [key, fallback] of [["pad_token", "<pad>"], ["eos_token", "</s>"], ["unk_token", "<unk>"]]) {
    const name = tokenName(config[key], fallback), id = model.pieces.findIndex((p) => p.piece === name);
    if (id >= 0) added.set(name, id);
  }
  for (let i = 0; i < n; i++) added.set(`<extra_id_${i}>`, size + n - 1 - i);
  for (const t of Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : []) {
    if (!added.has(tokenName(t, ""))) {
      throw new ForaError(
        "bundle",
        `${where}: additional special token ${JSON.stringify(tokenName(t, ""))} is not one of the ${n} <extra_id_N> sentinels ` +
          `(extra_ids in tokenizer_config.json)`,
      );
    }
  }
  return t5Tokenizer(model, added, size + n, config, where);
}

/**
 * Reads tokenizer.json (T5TokenizerFast's file) for the same things spiece.model holds: the
 * unigram pieces and scores, the `Precompiled` normalisation table and the `Metaspace`
 * prefix, and the added tokens with their ids. It is encoded as sentencepiece does, so both
 * files of one folder give T5Tokenizer's ids (the fast tokenizer itself differs on rare
 * inputs, e.g. characters the table maps to nothing or to whitespace).
 */
export function t5TokenizerFromJson(json: Record<string, unknown>, config: Record<string, unknown>, where: string): T5Tokenizer {
  const m = json.model as { type?: string; vocab?: unknown; unk_id?: unknown; byte_fallback?: unknown } | undefined;
  if (!m || m.type !== "Unigram" || !Array.isArray(m.vocab)) {
    throw new ForaError("bundle", `${where}: not a T5 tokenizer (expected a "Unigram" model with a vocab)`);
  }
  if (m.byte_fallback === true) throw new ForaError("bundle", `${where}: byte_fallback models are not supported (T5's has none)`);
  const added = new Map<string, number>();
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    if (typeof t?.content !== "string" || !Number.isSafeInteger(t?.id)) {
      throw new ForaError("bundle", `${where}: malformed added_tokens entry`);
    }
    added.set(t.content, t.id);
  }
  const addedIds = new Set(added.values());
  const pieces = m.vocab.map((v, id) => {
    if (!Array.isArray(v) || typeof v[0] !== "string" || typeof v[1] !== "number") {
      throw new ForaError("bundle", `${where}: model.vocab[${id}] must be [piece, score]`);
    }
    const type = id === m.unk_id ? PieceType.unknown : addedIds.has(id) ? PieceType.control : PieceType.normal;
    return { piece: v[0], score: Math.fround(v[1]), type };
  });
  const model = { pieces, normalizer: jsonNormalizer(json, where) };
  return t5Tokenizer(model, added, Math.max(pieces.length, ...[...addedIds].map((i) => i + 1)), config, where);
}

/** The normaliser and pre-tokeniser of a T5 tokenizer.json as sentencepiece's normaliser settings. */
function jsonNormalizer(json: Record<string, unknown>, where: string): SentencePieceModel["normalizer"] {
  type Step = { type?: string; precompiled_charsmap?: string; normalizers?: Step[]; pretokenizers?: Step[]; pattern?: { Regex?: string } };
  type Meta = Step & { replacement?: string; add_prefix_space?: boolean; prepend_scheme?: string; content?: string };
  const flat = (s: Step | null | undefined, key: "normalizers" | "pretokenizers"): Meta[] =>
    !s ? [] : s.type === "Sequence" ? (s[key] ?? []).flatMap((x) => flat(x, key)) : [s];
  let charsmap = new Uint8Array();
  for (const n of flat(json.normalizer as Step, "normalizers")) {
    if (n.type === "Precompiled" && typeof n.precompiled_charsmap === "string") {
      charsmap = Uint8Array.from(atob(n.precompiled_charsmap), (c) => c.charCodeAt(0));
    } else if (!(n.type === "Replace" && n.pattern?.Regex === " {2,}" && n.content === " ")) {
      // Collapsing runs of spaces is what remove_extra_whitespaces does anyway; anything else is not T5's.
      throw new ForaError("bundle", `${where}: normalizer ${JSON.stringify(n.type)} is not a T5 tokenizer's (expected "Precompiled")`);
    }
  }
  let addDummyPrefix = false;
  for (const p of flat(json.pre_tokenizer as Step, "pretokenizers")) {
    if (p.type === "Metaspace" && p.replacement === "\u2581") {
      addDummyPrefix = p.prepend_scheme !== undefined ? p.prepend_scheme !== "never" : p.add_prefix_space !== false;
    } else if (p.type !== "WhitespaceSplit") {
      throw new ForaError("bundle", `${where}: pre_tokenizer ${JSON.stringify(p.type)} is not a T5 tokenizer's (expected "Metaspace")`);
    }
  }
  return { charsmap, addDummyPrefix, removeExtraWhitespaces: true, escapeWhitespaces: true };
}

/**
 * T5Tokenizer (legacy mode, PixArt's) over a unigram model: the text is split on the added
 * tokens first (`<pad>`, `</s>`, `<unk>`, the `<extra_id_N>` sentinels, which also eat the
 * whitespace around them); every other chunk is encoded by sentencepiece.
 */
function t5Tokenizer(
  model: SentencePieceModel,
  added: Map<string, number>,
  vocabSize: number,
  config: Record<string, unknown>,
  where: string,
): T5Tokenizer {
  if (config.legacy === false) {
    throw new ForaError(
      "bundle",
      `${where}: tokenizer_config.json sets "legacy": false; fora tokenizes as T5Tokenizer's legacy mode (PixArt's): ` +
        `remove the key or set it to true`,
    );
  }
  const encodePieces = sentencePieceEncoder(model, where);
  const idOf = (key: string, fallback: string) => {
    const name = tokenName(config[key], fallback), id = added.get(name) ?? model.pieces.findIndex((p) => p.piece === name);
    if (id < 0) throw new ForaError("bundle", `${where}: the vocabulary lacks ${name}`);
    return id;
  };
  const eosId = idOf("eos_token", "</s>"), padId = idOf("pad_token", "<pad>");
  const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const splitter = new RegExp(`(${[...added.keys()].sort((a, b) => b.length - a.length).map(escape).join("|")})`);
  return {
    eosId,
    padId,
    vocabSize,
    encode(text, maxLength = PIXART_MAX_TOKENS) {
      const parts = added.size ? text.split(splitter) : [text];
      const ids: number[] = [];
      parts.forEach((part, i) => {
        if (i % 2 === 1) return void ids.push(added.get(part)!);
        if (i > 0 && SENTINEL.test(parts[i - 1])) part = part.replace(LEADING_SPACE, "");
        if (i + 1 < parts.length && SENTINEL.test(parts[i + 1])) part = part.replace(TRAILING_SPACE, "");
        if (part) ids.push(...encodePieces(part));
      });
      return padded(ids, eosId, padId, maxLength);
    },
  };
}

/** Truncates the pieces to maxLength - 1, appends `</s>` and pads with `<pad>`. */
function padded(pieces: number[], eosId: number, padId: number, maxLength: number): TokenizedPrompt {
  if (maxLength < 1) throw new ForaError("usage", `max length ${maxLength} must be at least 1`);
  const ids = [...pieces.slice(0, maxLength - 1), eosId];
  const length = ids.length;
  return {
    inputIds: [...ids, ...Array(maxLength - length).fill(padId)],
    attentionMask: [...Array(length).fill(1), ...Array(maxLength - length).fill(0)],
    length,
  };
}
