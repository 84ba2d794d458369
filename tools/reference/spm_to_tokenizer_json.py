"""spiece.model (a T5 SentencePiece unigram model) -> tokenizer.json, without transformers.

    /usr/bin/python3 tools/reference/spm_to_tokenizer_json.py DIR/spiece.model DIR/tokenizer.json [EXTRA_IDS]

Writes the structure transformers' T5TokenizerFast saves: a Unigram model with the pieces and
scores of spiece.model, the model's own normalisation table as a `Precompiled` normaliser,
whitespace splitting plus `Metaspace` ("▁" prefix), `</s>` appended by the post-processor, and
`<extra_id_N>` sentinels (numbered from the end of the vocabulary, N = 0 last) as added tokens.
With transformers installed, `T5TokenizerFast.from_pretrained(DIR).save_pretrained(DIR)` writes
an equivalent file. Needs only the Python standard library (the model file is read as protobuf).
"""
import base64
import json
import struct
import sys


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) of one protobuf message (value: int, bytes or float bits)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, v


def read_model(path):
    """-> (pieces [(piece, score, type)], precompiled charsmap bytes, unk id)."""
    with open(path, "rb") as f:
        buf = f.read()
    pieces, charsmap = [], b""
    for field, _, v in _fields(buf):
        if field == 1:  # SentencePiece
            piece, score, kind = "", 0.0, 1
            for f2, _, v2 in _fields(v):
                if f2 == 1:
                    piece = v2.decode("utf-8")
                elif f2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    kind = v2
            pieces.append((piece, score, kind))
        elif field == 3:  # NormalizerSpec
            for f2, _, v2 in _fields(v):
                if f2 == 2:
                    charsmap = bytes(v2)
    unk = next(i for i, p in enumerate(pieces) if p[2] == 2)
    return pieces, charsmap, unk


def convert(model_path, out_path, extra_ids=100):
    pieces, charsmap, unk = read_model(model_path)
    vocab = [[p, float(s)] for p, s, _ in pieces]
    vocab += [[f"<extra_id_{i}>", 0.0] for i in range(extra_ids - 1, -1, -1)]
    special = {"<pad>", "</s>", "<unk>"}
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, (p, _) in enumerate(vocab) if p in special or p.startswith("<extra_id_")]
    eos = next(i for i, (p, _) in enumerate(vocab) if p == "</s>")
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]}},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": False},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    convert(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 100)
