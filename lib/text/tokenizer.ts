/**
 * The T5 tokenizer as PixArt calls it: `tokenizer(text, max_length=120, padding="max_length",
 * truncation=True, add_special_tokens=True)`. The pieces come from the checkpoint's
 * `tokenizer.json` through @huggingface/tokenizers; truncation keeps max_length - 1 pieces
 * and appends `</s>`, padding fills with `<pad>` and a 0 in the attention mask.
 */
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { ForaError } from "../errors.ts";

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

const HOW_TO_MAKE_JSON = "fora reads tokenizer.json (the fast tokenizer's file). To write it next to spiece.model, run " +
  "`python3 -c \"from transformers import T5TokenizerFast as T; T.from_pretrained('DIR').save_pretrained('DIR')\"`, " +
  "or, without transformers, `python3 tools/reference/spm_to_tokenizer_json.py DIR/spiece.model DIR/tokenizer.json`";

/** Reads DIR/tokenizer.json (and DIR/tokenizer_config.json when present). */
export async function loadT5Tokenizer(dir: string): Promise<T5Tokenizer> {
  const path = join(dir, "tokenizer.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const hasSpm = await Deno.stat(join(dir, "spiece.model")).then(() => true, () => false);
      throw new ForaError(
        "bundle",
        hasSpm
          ? `${dir}: has spiece.model but no tokenizer.json. ${HOW_TO_MAKE_JSON.replaceAll("DIR", dir)}`
          : `${dir}: no tokenizer.json here. ${HOW_TO_MAKE_JSON.replaceAll("DIR", dir)}`,
      );
    }
    throw new ForaError("io", `${path}: cannot read: ${(e as Error).message}`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ForaError("bundle", `${path}: not valid JSON (${(e as Error).message})`);
  }
  const config = await Deno.readTextFile(join(dir, "tokenizer_config.json")).then((t) => JSON.parse(t), () => ({}));
  return t5TokenizerFromJson(json, config, path);
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
    encode(textIn, maxLength = PIXART_MAX_TOKENS) {
      if (maxLength < 1) throw new ForaError("usage", `max length ${maxLength} must be at least 1`);
      const pieces = tok.encode(textIn, { add_special_tokens: false }).ids.slice(0, maxLength - 1);
      const ids = [...pieces, eosId];
      const length = ids.length;
      return {
        inputIds: [...ids, ...Array(maxLength - length).fill(padId)],
        attentionMask: [...Array(length).fill(1), ...Array(maxLength - length).fill(0)],
        length,
      };
    },
  };
}
