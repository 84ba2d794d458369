"""Writes fixtures/t5-tokenizer/: a prompt corpus and the ids the slow T5Tokenizer gives for it.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/reference/make_t5_tokenizer_goldens.py

Needs Debian's python3-sentencepiece and sentencepiece (spm_train). The ids come from the
sentencepiece library itself, wrapped the way transformers' T5Tokenizer (legacy mode, what
diffusers' PixArt pipelines load) wraps it: the text is first split on the added tokens
(`<pad>`, `</s>`, `<unk>` and the `<extra_id_N>` sentinels, numbered down from the end of the
vocabulary; a sentinel also eats the whitespace on both sides), each other chunk goes through
`SentencePieceProcessor.encode`, and `</s>` is appended. Ids are stored whole (untruncated).

Models (each with the number of `<extra_id_N>` its tokenizer_config.json would declare):
- pixart-tiny: fixtures/pixart-tiny/diffusers/tokenizer/spiece.model (nmt_nfkc, 300 pieces).
- licenses: nmt_nfkc, about 2,000 pieces trained on captions and Debian's license texts, so
  that the Viterbi search meets long pieces and close scores.
- identity: no normalisation table, add_dummy_prefix, remove_extra_whitespaces off, and two
  user-defined symbols: the code paths T5's own model does not take.

The corpus (>= 1,000 prompts) is generated from a fixed seed: re-running gives identical files.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_pixart_goldens import CORPUS, TRICKY_PROMPTS  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "t5-tokenizer")
PIXART_TINY = os.path.join(ROOT, "fixtures", "pixart-tiny", "diffusers", "tokenizer", "spiece.model")
LICENSES = ["GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3"]

# Python's str.isspace(): what T5Tokenizer strips around a sentinel.
PY_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
    "\u200a\u2028\u2029\u202f\u205f\u3000"

FRAGMENTS = [
    # full-width, ligatures, letterlike and number forms, circled, super/subscripts, math letters
    "Ｆｕｌｌｗｉｄｔｈ", "ＡＢＣ１２３", "ｈｅｌｌｏ，ｗｏｒｌｄ！", "ﬁne ﬂow ﬀ ﬃ ﬄ ﬅ ﬆ", "№ ℡ ™ ℃ ℉ Å ℮",
    "Ⅻ ⅻ Ⅳ", "① ② ⑳ ⓐ Ⓐ", "x² y³ H₂O 10⁻⁶", "½ ¼ ¾ ⅓ ⅞", "𝐀𝐁𝐂 𝒜 𝔸 𝟘𝟙", "ｶﾀｶﾅ ﾊﾟﾋﾟ", "㍻ ㎏ ㎞ ㌔",
    # accents, composed and decomposed
    "café", "cafe\u0301", "naïve", "nai\u0308ve", "Ångström", "A\u030angstro\u0308m", "Über", "U\u0308ber",
    "façade", "fac\u0327ade", "ñandú", "n\u0303andu\u0301", "Dvořák", "Zoë", "Œuvre æsthetic", "straße", "ǅ ǆ Ǆ",
    # scripts
    "漢字", "かな カナ", "한국어", "\u1112\u1161\u11ab", "кошка", "Ελληνικά", "עברית", "العربية", "ﻻ ﷺ", "ไทย",
    "हिन्दी", "Tiếng Việt", "ქართული", "አማርኛ",
    # emoji: plain, ZWJ sequences, skin tones, flags, keycaps, variation selectors
    "🐱", "🚀", "👩\u200d💻", "👍🏽", "🇫🇷", "1\ufe0f\u20e3", "❤\ufe0f", "☺", "🏳\ufe0f\u200d🌈", "😀😃😄",
    # zero-width, format and control characters
    "zero\u200bwidth", "non\u00a0breaking", "soft\u00adhyphen", "join\u200dner", "non\u200cjoiner", "word\u2060joiner",
    "\ufeffbom", "ctl\x01\x02\x7f", "nul\x00char", "bell\x07", "esc\x1b[0m", "lre\u202aA\u202c", "\ufffd",
    # whitespace of all kinds
    "  ", "     ", "\t", "\t\t", "\n", "\r\n", "\n\n\n", "\u3000", "\u2003", "\u2028", "\u1680", "\x85", "\x0b\x0c",
    # digits, punctuation, symbols
    "0", "42", "3.14159", "2,000,000", "1/2", "10%", "$5", "#1", "1e-3", "007", "2023-12-31", "12:30",
    "!!!", "???", "...", "…", ",,,", ";;;", "---", "—", "–", "((brackets))", "[x]", "{y}", "<z>", "“quotes”",
    "‘single’", "«guillemets»", "„low“", "\"dq\"", "'sq'", "`bt`", "@#$%^&*", "~_+=|\\", "§¶†‡•", "→ ⇒ ∞ ≈ ≠",
    "http://example.com/a?b=c&d", "someone@example.com", "C++", "f(x)=x^2", "a_b-c.d",
    # the tokenizer's added tokens, whole and broken
    "<extra_id_0>", "<extra_id_1>", "<extra_id_2>", "<extra_id_99>", "<extra_id_100>", "</s>", "<pad>", "<unk>",
    "<s>", "<extra_id_0><extra_id_1>", " <extra_id_0> ", "<extra_id_", "<extra_id_0", "< extra_id_0>", "<</s>>",
    "▁", "▁▁x", "_▁_",
]


def t5_ids(sp, text, extra_ids):
    """T5Tokenizer(text).input_ids, untruncated: added tokens split out, sentencepiece on the rest, + </s>."""
    size = sp.get_piece_size()
    added = {p: sp.piece_to_id(p) for p in ("<pad>", "</s>", "<unk>")}
    sentinels = {f"<extra_id_{i}>": size + extra_ids - 1 - i for i in range(extra_ids)}
    added.update(sentinels)
    pattern = "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))
    parts = re.split(f"({pattern})", text)
    ids = []
    for i, part in enumerate(parts):
        if i % 2 == 1:
            ids.append(added[part])
            continue
        if i > 0 and parts[i - 1] in sentinels:
            part = part.lstrip(PY_SPACE)
        if i + 1 < len(parts) and parts[i + 1] in sentinels:
            part = part.rstrip(PY_SPACE)
        if part:
            ids.extend(sp.encode(part))
    return ids + [sp.piece_to_id("</s>")]


def make_corpus():
    rng = random.Random(16)
    words = CORPUS.split()
    prompts = list(TRICKY_PROMPTS)
    prompts += FRAGMENTS
    prompts += ["", " ", "\t", "\n", "  \t \n ", "<extra_id_0>", "</s>", "a", "A", "1", ".", "▁"]
    # captions with fragments spliced in at random places
    while len(prompts) < 900:
        n = rng.randint(1, 24)
        out = []
        for _ in range(n):
            r = rng.random()
            if r < 0.6:
                w = rng.choice(words)
                out.append(w.upper() if rng.random() < 0.1 else w)
            else:
                out.append(rng.choice(FRAGMENTS))
        seps = [rng.choice([" ", " ", " ", "", "  ", "\t", "\n", "\u3000", "\u00a0", " , "]) for _ in out]
        text = "".join(s + w for s, w in zip(seps, out))
        if rng.random() < 0.3:
            text = rng.choice(["", " ", "  ", "\t", "\n"]) + text + rng.choice(["", " ", "  ", "\n", "."])
        prompts.append(text)
    # random code points from the blocks where NFKC and the charsmap do something
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x52f), (0x2000, 0x206f), (0x2100, 0x24ff),
              (0x3000, 0x30ff), (0x3200, 0x33ff), (0x4e00, 0x4e80), (0xac00, 0xac40), (0xf900, 0xfaff),
              (0xfb00, 0xfdff), (0xfe00, 0xfe6f), (0xff00, 0xffef), (0x1d400, 0x1d7ff), (0x1f300, 0x1faff)]
    while len(prompts) < 1150:
        n = rng.randint(1, 30)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)))
            if rng.random() < 0.2:
                chars.append(" ")
        prompts.append("".join(chars))
    # very long prompts (past 120 tokens, some far past)
    for k in range(6):
        n = rng.randint(100, 400)
        prompts.append(" ".join(rng.choice(words + FRAGMENTS[:40]) for _ in range(n)))
    prompts.append("word " * 300)
    prompts.append("x" * 1000)
    prompts.append(" " * 200 + "middle" + "\t" * 200)
    return prompts


def train(prefix, corpus_text, args):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(corpus_text)
        # Relative paths (run inside tmp): the model records them, and re-runs stay byte-identical.
        subprocess.run(["spm_train", "--input=corpus.txt", "--model_prefix=m", "--model_type=unigram",
                        "--character_coverage=1.0", "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1",
                        "--pad_piece=<pad>", "--eos_piece=</s>", "--unk_piece=<unk>", "--num_threads=1",
                        "--minloglevel=2", *args], check=True, capture_output=True, cwd=tmp)
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        shutil.copy(os.path.join(tmp, "m.model"), prefix + ".model")


def main():
    licenses = "".join(open(os.path.join("/usr/share/common-licenses", n), encoding="utf-8").read() for n in LICENSES)
    train(os.path.join(OUT, "licenses", "spiece"), CORPUS + licenses,
          ["--vocab_size=2000", "--hard_vocab_limit=false", "--normalization_rule_name=nmt_nfkc"])
    train(os.path.join(OUT, "identity", "spiece"), CORPUS,
          ["--vocab_size=250", "--hard_vocab_limit=false", "--normalization_rule_name=identity",
           "--add_dummy_prefix=false", "--remove_extra_whitespaces=false", "--user_defined_symbols=cactus,<z>"])
    models = {
        "pixart-tiny": (PIXART_TINY, 2),
        "licenses": (os.path.join(OUT, "licenses", "spiece.model"), 100),
        "identity": (os.path.join(OUT, "identity", "spiece.model"), 3),
    }
    prompts = make_corpus()
    golden = {
        "reference": f"sentencepiece {spm.__version__} wrapped as transformers' T5Tokenizer (legacy): added tokens split out, "
                     "sentinels strip surrounding whitespace, </s> appended, untruncated",
        "prompts": prompts,
        "models": {},
    }
    for name, (path, extra_ids) in models.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        golden["models"][name] = {
            "spiece": os.path.relpath(path, os.path.join(ROOT, "fixtures")),
            "extra_ids": extra_ids,
            "ids": [t5_ids(sp, p, extra_ids) for p in prompts],
        }
    with open(os.path.join(OUT, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(prompts)} prompts, {len(models)} models -> {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
