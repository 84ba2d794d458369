/**
 * The T5 tokenizer (lib/text/tokenizer.ts, @huggingface/tokenizers on tokenizer.json) against
 * the reference tokenizer's ids (sentencepiece on the same model's spiece.model, + </s>,
 * truncated and padded to 120 as PixArt calls it), on tricky prompts: empty, blank, very long,
 * unicode, full-width, emoji, punctuation runs, extra spaces, tabs and newlines.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadT5Tokenizer, PIXART_MAX_TOKENS } from "../../lib/text/tokenizer.ts";
import { isForaError } from "../../lib/errors.ts";
import { FIXTURES } from "../support.ts";

const TOKENIZER = join(FIXTURES, "pixart-tiny", "diffusers", "tokenizer");

Deno.test("tokenizer ids, padding and attention mask match the reference on every tricky prompt", async () => {
  const golden = JSON.parse(await Deno.readTextFile(join(FIXTURES, "pixart-tiny", "tokenizer-golden.json")));
  const tok = await loadT5Tokenizer(TOKENIZER);
  assert.equal(golden.max_length, PIXART_MAX_TOKENS);
  for (const c of golden.cases) {
    const r = tok.encode(c.prompt);
    assert.deepEqual(r.inputIds, c.input_ids, JSON.stringify(c.prompt));
    assert.deepEqual(r.attentionMask, c.attention_mask, JSON.stringify(c.prompt));
    assert.equal(r.length, c.attention_mask.reduce((a: number, b: number) => a + b, 0));
  }
  const long = golden.cases.find((c: { prompt: string }) => c.prompt.startsWith("word "));
  assert.equal(tok.encode(long.prompt).length, PIXART_MAX_TOKENS, "a long prompt fills all 120 positions, </s> last");
  assert.equal(tok.encode(long.prompt).inputIds[PIXART_MAX_TOKENS - 1], tok.eosId);
});

Deno.test("a tokenizer folder with only spiece.model fails with how to write tokenizer.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fora-tok-" });
  try {
    await Deno.copyFile(join(TOKENIZER, "spiece.model"), join(dir, "spiece.model"));
    await assert.rejects(loadT5Tokenizer(dir), (e) => {
      assert.ok(isForaError(e));
      assert.match(e.message, /spiece\.model but no tokenizer\.json/);
      assert.match(e.message, /T5TokenizerFast/);
      assert.match(e.message, /spm_to_tokenizer_json\.py/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
