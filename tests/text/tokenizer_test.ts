/**
 * The T5 tokenizer (lib/text/tokenizer.ts over lib/text/sentencepiece.ts) against the slow
 * T5Tokenizer's ids: sentencepiece itself on a 1,159-prompt corpus (Unicode and NFKC cases,
 * whitespace runs, control and zero-width characters, sentinels, empty and very long prompts;
 * tools/reference/make_t5_tokenizer_goldens.py) for three models, through spiece.model and
 * through tokenizer.json, plus PixArt's truncation and padding to 120.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  loadT5Tokenizer,
  PIXART_MAX_TOKENS,
  type T5Tokenizer,
  t5TokenizerFromJson,
  t5TokenizerFromSentencePiece,
} from "../../lib/text/tokenizer.ts";
import { isForaError } from "../../lib/errors.ts";
import { FIXTURES } from "../support.ts";

const TOKENIZER = join(FIXTURES, "pixart-tiny", "diffusers", "tokenizer");

interface Golden {
  prompts: string[];
  models: Record<string, { spiece: string; extra_ids: number; ids: number[][] }>;
}
const golden: Golden = JSON.parse(await Deno.readTextFile(join(FIXTURES, "t5-tokenizer", "golden.json")));

/** Untruncated ids: one more slot than the reference has, so an extra piece would show. */
function mismatches(tok: T5Tokenizer, ids: number[][]): string[] {
  const bad: string[] = [];
  golden.prompts.forEach((prompt, i) => {
    const r = tok.encode(prompt, ids[i].length + 1);
    const got = r.inputIds.slice(0, r.length);
    if (JSON.stringify(got) !== JSON.stringify(ids[i])) bad.push(`${JSON.stringify(prompt)}: ${got} != ${ids[i]}`);
  });
  return bad;
}

const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));

for (const [name, m] of Object.entries(golden.models)) {
  Deno.test(`spiece.model gives sentencepiece's ids on all ${golden.prompts.length} corpus prompts (${name} model)`, async () => {
    assert.ok(golden.prompts.length >= 1000);
    const tok = t5TokenizerFromSentencePiece(await Deno.readFile(join(FIXTURES, m.spiece)), { extra_ids: m.extra_ids }, m.spiece);
    assert.deepEqual(mismatches(tok, m.ids), []);
  });
}

Deno.test("tokenizer.json and spiece.model of one folder give the same ids on the whole corpus", async () => {
  const config = await readJson(join(TOKENIZER, "tokenizer_config.json"));
  const json = t5TokenizerFromJson(await readJson(join(TOKENIZER, "tokenizer.json")), config, "tokenizer.json");
  const spm = t5TokenizerFromSentencePiece(await Deno.readFile(join(TOKENIZER, "spiece.model")), config, "spiece.model");
  assert.deepEqual(mismatches(json, golden.models["pixart-tiny"].ids), []);
  assert.deepEqual(mismatches(spm, golden.models["pixart-tiny"].ids), []);
  assert.deepEqual([json.eosId, json.padId, json.vocabSize], [spm.eosId, spm.padId, spm.vocabSize]);
});

/** A copy of the tokenizer folder holding only `keep` (and tokenizer_config.json). */
async function folderWith(keep: string[], body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fora-tok-" });
  try {
    for (const f of [...keep, "tokenizer_config.json"]) await Deno.copyFile(join(TOKENIZER, f), join(dir, f));
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const file of ["spiece.model", "tokenizer.json"]) {
  Deno.test(`a folder with only ${file}: ids, padding and attention mask as PixArt's tokenizer call gives them`, async () => {
    const ref = await readJson(join(FIXTURES, "pixart-tiny", "tokenizer-golden.json"));
    assert.equal(ref.max_length, PIXART_MAX_TOKENS);
    await folderWith([file], async (dir) => {
      const tok = await loadT5Tokenizer(dir);
      for (const c of ref.cases) {
        const r = tok.encode(c.prompt);
        assert.deepEqual(r.inputIds, c.input_ids, JSON.stringify(c.prompt));
        assert.deepEqual(r.attentionMask, c.attention_mask, JSON.stringify(c.prompt));
        assert.equal(r.length, c.attention_mask.reduce((a: number, b: number) => a + b, 0));
      }
      const long = tok.encode("word ".repeat(200));
      assert.equal(long.length, PIXART_MAX_TOKENS, "a long prompt fills all 120 positions, </s> last");
      assert.equal(long.inputIds[PIXART_MAX_TOKENS - 1], tok.eosId);
    });
  });
}

async function rejects(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  await assert.rejects(async () => await (typeof p === "function" ? p() : p), (e) => {
    assert.ok(isForaError(e), String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("a tokenizer folder with neither file names both", async () => {
  await folderWith([], (dir) => rejects(loadT5Tokenizer(dir), /no spiece\.model or tokenizer\.json/));
});

Deno.test("models the encoder does not implement are refused by name", async () => {
  const bytes = await Deno.readFile(join(TOKENIZER, "spiece.model"));
  // A later trainer_spec merges into the earlier one (protobuf), so this sets model_type.
  const withTrainer = (field: number, value: number) => {
    const inner = new BinaryWriter().tag(field, WireType.Varint).int32(value).finish();
    return Uint8Array.from([...bytes, ...new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(inner).finish()]);
  };
  await rejects(() => t5TokenizerFromSentencePiece(withTrainer(3, 2), {}, "m"), /m: a BPE SentencePiece model; fora reads unigram/);
  await rejects(() => t5TokenizerFromSentencePiece(withTrainer(35, 1), {}, "m"), /byte_fallback/);
  await rejects(() => t5TokenizerFromSentencePiece(bytes.subarray(0, 1000), {}, "m"), /m: not a SentencePiece model/);
  await rejects(() => t5TokenizerFromSentencePiece(bytes, { legacy: false }, "m"), /"legacy": false/);
  await rejects(
    () => t5TokenizerFromSentencePiece(bytes, { extra_ids: 1, additional_special_tokens: ["<extra_id_0>", "<extra_id_1>"] }, "m"),
    /"<extra_id_1>" is not one of the 1 <extra_id_N> sentinels/,
  );
  const json = await readJson(join(TOKENIZER, "tokenizer.json"));
  await rejects(() => t5TokenizerFromJson({ ...json, normalizer: { type: "NFKC" } }, {}, "j"), /j: normalizer "NFKC" is not a T5/);
  await rejects(() => t5TokenizerFromJson({ ...json, model: { type: "BPE" } }, {}, "j"), /not a T5 tokenizer/);
});

Deno.test("sentinels take the ids after the pieces, <extra_id_0> last, and eat the whitespace around them", async () => {
  const tok = await loadT5Tokenizer(TOKENIZER);
  assert.equal(tok.vocabSize, 302);
  assert.deepEqual(tok.encode("<extra_id_0><extra_id_1></s>").inputIds.slice(0, 4), [301, 300, tok.eosId, tok.eosId]);
  // The identity model keeps whitespace, so only the stripping makes these equal.
  const m = golden.models.identity;
  const id = t5TokenizerFromSentencePiece(await Deno.readFile(join(FIXTURES, m.spiece)), { extra_ids: m.extra_ids }, m.spiece);
  const ids = (t: string) => id.encode(t).inputIds.slice(0, id.encode(t).length);
  assert.deepEqual(ids("a <extra_id_0>\t b"), ids("a<extra_id_0>b"));
  assert.notDeepEqual(ids("a </s> b"), ids("a</s>b"), "</s> keeps the whitespace around it");
});
