/**
 * The T5 tokenizer as PixArt calls it: `tokenizer(text, max_length=120, padding="max_length",
 * truncation=True, add_special_tokens=True)`. The pieces come from the checkpoint's
 * `spiece.model` through lib/text/sentencepiece.ts (what the slow T5Tokenizer reads), or from
 * its `tokenizer.json` through @huggingface/tokenizers; both give the same ids. Truncation
 * keeps max_length - 1 pieces and appends `</s>`, padding fills with `<pad>` and a 0 in the
 * attention mask.
 */
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { ForaError } from "../errors.ts";
import { parseSentencePieceModel, sentencePieceEncoder } from "./sentencepiece.ts";

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

function tokenName(v: unknown, fallback: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return fallback;
}

/**
 * T5Tokenizer (legacy mode) over a SentencePiece model: the text is split on its added
 * tokens first (`<pad>`, `</s>`, `<unk>`, and the `extra_ids` sentinels `<extra_id_N>`, which
 * take the ids after the model's pieces counting down, N = 0 last, and eat the whitespace
 * around them); every other chunk is encoded by sentencepiece.
 */
export function t5TokenizerFromSentencePiece(bytes: Uint8Array, config: Record<string, unknown>, where: string): T5Tokenizer {
  if (config.legacy === false) {
    throw new ForaError(
      "bundle",
      `${where}: tokenizer_config.json sets "legacy": false; fora tokenizes as T5Tokenizer's legacy mode (PixArt's): remove the key or set it true`,
    );
  }
  const model = parseSentencePieceModel(bytes, where);
  const encodePieces = sentencePieceEncoder(model, where);
  const extraIds = config.extra_ids ?? 100;
  if (!Number.isSafeInteger(extraIds) || (extraIds as number) < 0) {
    throw new ForaError("bundle", `${where}: tokenizer_config.json: extra_ids must be a non-negative integer`);
  }
  const size = model.pieces.length;
  const idOf = (piece: string) => {
    const id = model.pieces.findIndex((p) => p.piece === piece);
    if (id < 0) throw new ForaError("bundle", `${where}: the vocabulary lacks ${piece}`);
    return id;
  };
  const eosId = idOf(tokenName(config.eos_token, "</s>")), padId = idOf(tokenName(config.pad_token, "<pad>"));
  const added = new Map<string, number>([
    [tokenName(config.pad_token, "<pad>"), padId],
    [tokenName(config.eos_token, "</s>"), eosId],
    [tokenName(config.unk_token, "<unk>"), idOf(tokenName(config.unk_token, "<unk>"))],
  ]);
  const sentinels = new Set<string>();
  for (let i = 0; i < (extraIds as number); i++) {
    added.set(`<extra_id_${i}>`, size + (extraIds as number) - 1 - i);
    sentinels.add(`<extra_id_${i}>`);
  }
  for (const t of Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : []) {
    if (!added.has(tokenName(t, ""))) {
      throw new ForaError("bundle", `${where}: additional special token ${JSON.stringify(t)} is not one of the ${extraIds} <extra_id_N> sentinels`);
    }
  }
  const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const splitter = new RegExp(`(${[...added.keys()].sort((a, b) => b.length - a.length).map(escape).join("|")})`);
  return {
    eosId,
    padId,
    vocabSize: size + (extraIds as number),
    encode(text, maxLength = PIXART_MAX_TOKENS) {
      const parts = text.split(splitter);
      const ids: number[] = [];
      parts.forEach((part, i) => {
        if (i % 2 === 1) return void ids.push(added.get(part)!);
        if (i > 0 && sentinels.has(parts[i - 1])) part = part.replace(LEADING_SPACE, "");
        if (i + 1 < parts.length && sentinels.has(parts[i + 1])) part = part.replace(TRAILING_SPACE, "");
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

export function t5TokenizerFromJson(json: Record<string, unknown>, config: Record<string, unknown>, where: string): T5Tokenizer {
  const model = json.model as { type?: string; vocab?: unknown[] } | undefined;
  if (!model || model.type !== "Unigram" || !Array.isArray(model.vocab)) {
    throw new ForaError("bundle", `${where}: not a T5 tokenizer (expected a "Unigram" model with a vocab)`);
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, { eos_token: "</s>", unk_token: "<unk>", pad_token: "<pad>", ...config });
  } catch (e) {
    throw new ForaError("bundle", `${where}: cannot build the tokenizer: ${(e as Error).message}`);
  }
  const eosId = tok.token_to_id("</s>"), padId = tok.token_to_id("<pad>");
  if (eosId === undefined || padId === undefined) throw new ForaError("bundle", `${where}: the vocabulary lacks </s> or <pad>`);
  const addedIds = ((json.added_tokens ?? []) as { id: number }[]).map((t) => t.id);
  const vocabSize = Math.max(model.vocab.length, ...addedIds.map((i) => i + 1));
  return {
    eosId,
    padId,
    vocabSize,
    encode(text, maxLength = PIXART_MAX_TOKENS) {
      return padded(tok.encode(text, { add_special_tokens: false }).ids, eosId, padId, maxLength);
    },
  };
}
