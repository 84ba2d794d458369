"""Writes fixtures/pixart-tiny/: a tiny random-weight PixArt-alpha pipeline and its goldens, and
fixtures/pixart-family/: tiny transformers for the rest of the family, with their goldens.

    OMP_NUM_THREADS=2 /usr/bin/python3 tools/reference/make_pixart_goldens.py [--only family]

Needs Debian's python3-torch, python3-numpy, python3-sentencepiece and sentencepiece (spm_train).

- tokenizer/: a T5-style SentencePiece unigram model (nmt_nfkc normalisation, pad 0, eos 1,
  unk 2, two <extra_id_N> sentinels) trained on the small corpus below, and the tokenizer.json
  made from it by spm_to_tokenizer_json.py; tokenizer-golden.json holds the reference ids
  (sentencepiece + </s>, truncated and padded to 120 as PixArt's tokenizer call does).
- text_encoder/: a 2-layer T5 v1.1 encoder (t5.py), sharded in two files with an index.
- transformer/: a 2-block PixArt (pixart.py) in diffusers names; original/ holds the same
  weights in the original PixArt names, with the learned null caption.
- vae/: the tiny VAE of fixtures/vae-tiny; scheduler/: PixArt's DPM-Solver++ config.
- golden-t5.safetensors, golden-pixart.safetensors: float64 math from the stored F32 weights.

fixtures/pixart-family/<name>/ holds a diffusers `transformer/` (config.json and weights; the
caption width is pixart-tiny's T5, so a test assembles a whole pipeline from pixart-tiny's other
folders) and golden.safetensors: one guided full step, R_j for two reuse timesteps and the reuse
steps (cross-attention cached and recomputed), in float64:

- alpha-512:     interpolation_scale 2 (a table scaled unlike the trained grid), square latent.
- alpha-1024-ms: micro-conditions (resolution and aspect-ratio embedders), interpolation_scale 2,
                 a non-square 6 x 10 latent (grid 3 x 5 on a trained 4 x 4); original/ holds the same
                 weights in the original names (csize_embedder, ar_embedder).
- sigma:         interpolation_scale 0.5, 300-token captions (a 150-token prompt), weights stored
                 as F16 (the values are fp16-exact, so the goldens are the same as from F32).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from make_goldens import fp16_exact, gen, write_json, f32  # noqa: E402
from pixart import PixArt, PixArtConfig, diffusers_config, guide, to_diffusers  # noqa: E402
from spm_to_tokenizer_json import convert as spm_to_json  # noqa: E402
from t5 import T5Config, T5Encoder, relative_position_bucket  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "pixart-tiny")
PIPE = os.path.join(OUT, "diffusers")
MAX_TOKENS = 120
EXTRA_IDS = 2

CORPUS = """\
A small cactus with a happy face in the Sahara desert.
An astronaut riding a green horse on the moon, digital art.
A photo of a red fox sitting in a snowy forest at dawn.
Portrait of an old sailor with a grey beard, oil painting, dramatic light.
A bowl of ramen with eggs and green onions, top view, studio lighting.
A futuristic city skyline at night with flying cars and neon signs.
Two cats playing with a ball of yarn on a wooden floor.
A watercolor painting of a lighthouse on a rocky coast during a storm.
A cozy reading nook with a cup of tea, soft morning light, 4k.
A dragon made of crystal flying over snowy mountains, fantasy art.
Close-up of a hummingbird drinking nectar from a purple flower.
An old library full of books and ladders, warm and dusty atmosphere.
A vintage car parked in front of a diner in the 1950s.
Macro photograph of a dew drop on a spider web, bokeh background.
A robot chef cooking pancakes in a bright kitchen.
Sunset over the ocean with sailboats, impressionist style.
A medieval castle on a hill surrounded by fog and autumn trees.
A teddy bear wearing sunglasses at the beach, photorealistic.
Café au lait on a marble table in Paris, with croissants and jam.
A koi pond in a Japanese garden with cherry blossoms in spring.
The Northern lights above a frozen lake, long exposure photograph.
A steampunk airship with brass gears and copper pipes.
An elephant walking across the savanna at golden hour.
A bouquet of sunflowers in a blue vase, still life, high detail.
Children flying kites on a windy hill under a cloudy sky.
A snowy village at night with glowing windows and smoke from chimneys.
An underwater scene with coral reefs, turtles and colorful fish.
A minimalist poster of a mountain range in pastel colors.
A giraffe wearing a scarf, cartoon style, white background.
Naïve art of a farmhouse with cows, sheep and a red barn.
Über-detailed 3D render of a glass chess set on a checkered board.
Prompt: "a cat", size 512x512, seed #42, price $19.99 & 50% off!
email me at someone@example.com or visit www.example.com/page?id=7
Numbers 0 1 2 3 4 5 6 7 8 9 and 10, 20, 30, 100, 1000, 2023.
"""

TRICKY_PROMPTS = [
    "",
    " ",
    "A small cactus with a happy face in the Sahara desert.",
    "  extra   spaces\tand\ttabs\nand newlines  ",
    "ÜBER café naïve façade — “quotes” ‘single’ …",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ligature ﬁne ﬂow",
    "emoji 🐱🚀 and CJK 漢字 かな and Cyrillic кошка",
    "punctuation!!! ??? ... ,,, ;;; --- ((brackets)) [x] {y} <z>",
    "numbers 3.14159 2,000,000 1/2 ½ 10% $5 #1",
    "UPPER lower MiXeD CaSe",
    "zero\u200bwidth and non\u00a0breaking space",
    " ".join(["a very long prompt that goes on and on"] * 30),
    "word " * 200,
]


def make_tokenizer(tok_dir):
    """Trains the SentencePiece model and writes the tokenizer folder; returns the sentencepiece processor."""
    import sentencepiece as spm
    os.makedirs(tok_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(CORPUS)
        prefix = os.path.join(tmp, "spiece")
        subprocess.run([
            "spm_train", f"--input={corpus}", f"--model_prefix={prefix}", "--model_type=unigram",
            "--vocab_size=300", "--hard_vocab_limit=false", "--character_coverage=1.0",
            "--normalization_rule_name=nmt_nfkc", "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1",
            "--pad_piece=<pad>", "--eos_piece=</s>", "--unk_piece=<unk>", "--num_threads=1", "--seed_sentencepiece_size=100000",
            "--minloglevel=2",
        ], check=True, capture_output=True)
        shutil.copy(prefix + ".model", os.path.join(tok_dir, "spiece.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tok_dir, "spiece.model"))
    spm_to_json(os.path.join(tok_dir, "spiece.model"), os.path.join(tok_dir, "tokenizer.json"), EXTRA_IDS)
    extra = [f"<extra_id_{i}>" for i in range(EXTRA_IDS)]
    write_json(os.path.join(tok_dir, "tokenizer_config.json"), {
        "tokenizer_class": "T5Tokenizer", "model_max_length": 512, "extra_ids": EXTRA_IDS,
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "additional_special_tokens": extra,
        "legacy": True,
    })
    write_json(os.path.join(tok_dir, "special_tokens_map.json"), {
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "additional_special_tokens": extra,
    })
    return sp


def reference_ids(sp, text):
    """T5Tokenizer(text, max_length=120, padding="max_length", truncation=True): sentencepiece ids + </s>."""
    ids = sp.encode(text)[: MAX_TOKENS - 1] + [1]
    mask = [1] * len(ids) + [0] * (MAX_TOKENS - len(ids))
    return ids + [0] * (MAX_TOKENS - len(ids)), mask


def randomize_t5(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif name.startswith("shared"):
                v = torch.randn(p.shape, generator=g)
            elif name.startswith("rel_bias"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5
            p.copy_(fp16_exact(v))


def randomize_pixart(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale_shift_table") or name.endswith("y_embedding"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif p.ndim >= 2:
                v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
            else:
                v = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(fp16_exact(v))


def save_sharded(folder, sd, shards=2):
    """transformers-style sharded checkpoint: model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    names = sorted(sd)
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: sd[n] for n in names[i * per:(i + 1) * per]}
        st.save(os.path.join(folder, fname), f32(part), {"format": "pt"})
        for n, v in part.items():
            weight_map[n] = fname
            total += v.numel() * 4
    write_json(os.path.join(folder, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})


FAMILY = os.path.join(ROOT, "fixtures", "pixart-family")
# (name, config overrides, latent height x width, caption tokens cond / uncond, weight dtype)
FAMILIES = [
    ("alpha-512", dict(interpolation_scale=2.0), (8, 8), (5, 3), torch.float32),
    ("alpha-1024-ms", dict(interpolation_scale=2.0, micro_conditions=True), (6, 10), (7, 2), torch.float32),
    ("sigma", dict(interpolation_scale=0.5, max_tokens=300), (8, 8), (150, 1), torch.float16),
]


def step_goldens(model, pcfg, g, hw, n_cond, n_uncond):
    """Inputs and float64 outputs of one guided full step, its R_j and the reuse steps (batch 2, CFG 4.5)."""
    B, C = 2, pcfg.in_channels
    x = torch.randn(B, C, *hw, generator=g)
    x_reuse = torch.randn(B, C, *hw, generator=g)
    cond = torch.randn(B, n_cond, pcfg.caption_channels, generator=g)
    uncond = torch.randn(B, n_uncond, pcfg.caption_channels, generator=g)
    t, t_reuse, scale = torch.tensor([421.0], dtype=torch.float64), torch.tensor([417.0, 413.5], dtype=torch.float64), 4.5
    feats = [f.double() for f in cond] + [f.double() for f in uncond]
    xx, xr = torch.cat([x, x]).double(), torch.cat([x_reuse, x_reuse]).double()
    gp = {"x": x, "x_reuse": x_reuse, "t": t, "t_reuse": t_reuse, "cfg_scale": torch.tensor([scale]),
          "caption_cond": cond, "caption_uncond": uncond}
    with torch.no_grad():
        raw, inter = model.forward_full(xx, t, feats)
        gp["out_all"] = guide(raw, C, scale, "all")
        gp["t_emb"] = model.t_emb(t, 1)
        for j in range(len(t_reuse)):
            tj = t_reuse[j:j + 1]
            gp[f"residual.{j}"] = model.residual(tj, 2 * B, inter["attn"], inter["cross"], inter["mlp"])
            for key, cache_cross in (("reuse_out", True), ("reuse_xr_out", False)):
                out = model.forward_reuse(xr, tj, feats, inter["attn"], inter["cross"], inter["mlp"], cache_cross=cache_cross)
                gp[f"{key}.{j}"] = guide(out, C, scale, "all")
    return gp


def write_families():
    if os.path.exists(FAMILY):
        shutil.rmtree(FAMILY)
    for i, (name, over, hw, (n_cond, n_uncond), dtype) in enumerate(FAMILIES):
        pcfg = PixArtConfig(depth=2, hidden_size=48, num_heads=4, patch_size=2, input_size=8, in_channels=4,
                            caption_channels=32, **over)
        model = PixArt(pcfg)
        randomize_pixart(model, gen(20 + i))
        sd = f32(dict(model.state_dict()))
        out = os.path.join(FAMILY, name)
        tr_dir = os.path.join(out, "transformer")
        os.makedirs(tr_dir)
        write_json(os.path.join(tr_dir, "config.json"), diffusers_config(pcfg))
        dsd = {k: v.to(dtype) for k, v in to_diffusers(sd, pcfg.depth).items()}
        st.save(os.path.join(tr_dir, "diffusion_pytorch_model.safetensors"), dsd, {"format": "pt"})
        if pcfg.micro_conditions:
            os.makedirs(os.path.join(out, "original"))
            st.save(os.path.join(out, "original", "diffusion_pytorch_model.safetensors"), sd, {"format": "pt"})
        model.load_state_dict(sd)
        model.double()
        gp = step_goldens(model, pcfg, gen(30 + i), hw, n_cond, n_uncond)
        st.save(os.path.join(out, "golden.safetensors"), f32(gp), {
            "generator": "tools/reference/make_pixart_goldens.py", "config": json.dumps(pcfg.__dict__),
            "latent": json.dumps(list(hw)), "vae_scale": str(pcfg.vae_scale)})
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(FAMILY) for f in fs)
    print(f"wrote {FAMILY} ({total / 1e6:.2f} MB)")


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if sys.argv[1:] == ["--only", "family"]:
        write_families()
        return
    if os.path.exists(PIPE):
        shutil.rmtree(PIPE)
    os.makedirs(PIPE)

    # ---- tokenizer
    sp = make_tokenizer(os.path.join(PIPE, "tokenizer"))
    tok_golden = []
    for p in TRICKY_PROMPTS:
        ids, mask = reference_ids(sp, p)
        tok_golden.append({"prompt": p, "input_ids": ids, "attention_mask": mask})
    write_json(os.path.join(OUT, "tokenizer-golden.json"), {
        "generator": "tools/reference/make_pixart_goldens.py",
        "reference": "sentencepiece (the slow T5Tokenizer): ids of spiece.model + </s>, truncated to 120, padded with <pad>",
        "max_length": MAX_TOKENS, "cases": tok_golden})

    # ---- T5 encoder
    vocab = sp.get_piece_size() + EXTRA_IDS
    tcfg = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
    t5 = T5Encoder(tcfg)
    randomize_t5(t5, gen(11))
    te_dir = os.path.join(PIPE, "text_encoder")
    os.makedirs(te_dir)
    write_json(os.path.join(te_dir, "config.json"), tcfg.hf_config())
    save_sharded(te_dir, t5.hf_state_dict())
    t5.double()
    prompts = ["A small cactus with a happy face in the Sahara desert.", ""]
    g5 = {}
    with torch.no_grad():
        for i, p in enumerate(prompts):
            ids, mask = reference_ids(sp, p)
            ids_t, mask_t = torch.tensor([ids]), torch.tensor([mask])
            n = sum(mask)
            g5[f"ids.{i}"] = ids_t[:, :n].double()
            g5[f"hidden.{i}"] = t5(ids_t[:, :n])            # real tokens only
            g5[f"padded_hidden.{i}"] = t5(ids_t, mask_t)     # 120 tokens with the mask, as PixArt runs it
        # a long input with large values, for the fp16 overflow check: every id, repeated
        long_ids = (torch.arange(MAX_TOKENS) * 7 % vocab)[None]
        g5["ids.long"] = long_ids.double()
        g5["hidden.long"] = t5(long_ids)
        rel = torch.arange(-(MAX_TOKENS - 1), MAX_TOKENS)
        g5["kern.buckets"] = relative_position_bucket(rel, 32, 128).double()
    st.save(os.path.join(OUT, "golden-t5.safetensors"), f32(g5),
            {"generator": "tools/reference/make_pixart_goldens.py", "config": json.dumps(tcfg.__dict__),
             "prompts": json.dumps(prompts)})

    # ---- PixArt transformer
    pcfg = PixArtConfig(depth=2, hidden_size=64, num_heads=4, patch_size=2, input_size=8, in_channels=4,
                        caption_channels=tcfg.d_model, max_tokens=MAX_TOKENS)
    model = PixArt(pcfg)
    randomize_pixart(model, gen(12))
    sd = f32({k: v for k, v in model.state_dict().items()})
    orig_dir = os.path.join(OUT, "original")
    os.makedirs(orig_dir, exist_ok=True)
    write_json(os.path.join(orig_dir, "config.json"), {
        "architecture": "pixart", "depth": pcfg.depth, "hidden_size": pcfg.hidden_size, "num_heads": pcfg.num_heads,
        "patch_size": pcfg.patch_size, "input_size": pcfg.input_size, "in_channels": pcfg.in_channels,
        "caption_channels": pcfg.caption_channels, "learn_sigma": pcfg.learn_sigma, "max_tokens": pcfg.max_tokens})
    st.save(os.path.join(orig_dir, "model.safetensors"), sd, {"format": "pt"})
    tr_dir = os.path.join(PIPE, "transformer")
    os.makedirs(tr_dir)
    write_json(os.path.join(tr_dir, "config.json"), diffusers_config(pcfg))
    st.save(os.path.join(tr_dir, "diffusion_pytorch_model.safetensors"), to_diffusers(sd, pcfg.depth), {"format": "pt"})

    # ---- VAE, scheduler, pipeline index
    shutil.copytree(os.path.join(ROOT, "fixtures", "vae-tiny"), os.path.join(PIPE, "vae"),
                    ignore=shutil.ignore_patterns("golden*"))
    write_json(os.path.join(PIPE, "scheduler", "scheduler_config.json"), {
        "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "beta_end": 0.02,
        "beta_schedule": "linear", "beta_start": 0.0001, "num_train_timesteps": 1000, "solver_order": 2,
        "solver_type": "midpoint", "lower_order_final": True, "prediction_type": "epsilon", "thresholding": False,
        "use_karras_sigmas": False})
    write_json(os.path.join(PIPE, "model_index.json"), {
        "_class_name": "PixArtAlphaPipeline", "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "PixArtTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})

    # ---- PixArt goldens (float64 from the stored F32 values)
    model.load_state_dict({k: v for k, v in sd.items()})
    model.double()
    g = gen(13)
    B, C, S = 2, pcfg.in_channels, pcfg.input_size
    n_cond, n_uncond = 5, 3
    x = torch.randn(B, C, S, S, generator=g)
    x_reuse = torch.randn(B, C, S, S, generator=g)
    cond = torch.randn(B, n_cond, pcfg.caption_channels, generator=g)
    uncond = torch.randn(B, n_uncond, pcfg.caption_channels, generator=g)
    t, t_reuse, scale = torch.tensor([421.0], dtype=torch.float64), torch.tensor([417.0, 413.5], dtype=torch.float64), 4.5
    feats = [f.double() for f in cond] + [f.double() for f in uncond]  # batch [cond; uncond]
    xx = torch.cat([x, x]).double()
    xr = torch.cat([x_reuse, x_reuse]).double()
    gp = {"x": x, "x_reuse": x_reuse, "t": t, "t_reuse": t_reuse, "cfg_scale": torch.tensor([scale]),
          "caption_cond": cond, "caption_uncond": uncond}
    with torch.no_grad():
        raw, inter = model.forward_full(xx, t, feats)
        gp["model_out"] = raw
        gp["out_all"] = guide(raw, C, scale, "all")
        gp["out_ref"] = guide(raw, C, scale, "ref")
        gp["tokens"] = inter["tokens"]
        gp["t0"] = inter["t0"][:1]
        for k, blk in enumerate(model.blocks):
            gp[f"attn.{k}"], gp[f"cross.{k}"], gp[f"mlp.{k}"] = inter["attn"][k], inter["cross"][k], inter["mlp"][k]
            ck, cv = zip(*[blk.cross_attn.kv(y) for y in inter["ys"][:B]])
            gp[f"text_k.{k}"], gp[f"text_v.{k}"] = torch.stack(ck), torch.stack(cv)
        for j in range(len(t_reuse)):
            tj = t_reuse[j:j + 1]
            gp[f"residual.{j}"] = model.residual(tj, 2 * B, inter["attn"], inter["cross"], inter["mlp"])
            on = model.forward_reuse(xr, tj, feats, inter["attn"], inter["cross"], inter["mlp"], cache_cross=True)
            off = model.forward_reuse(xr, tj, feats, inter["attn"], inter["cross"], inter["mlp"], cache_cross=False)
            gp[f"reuse_out.{j}"] = guide(on, C, scale, "all")
            gp[f"reuse_xr_out.{j}"] = guide(off, C, scale, "all")
        # the learned null caption (original weights), projected
        gp["null_caption"] = model.null_caption(n_cond)
    st.save(os.path.join(OUT, "golden-pixart.safetensors"), f32(gp), {
        "generator": "tools/reference/make_pixart_goldens.py", "config": json.dumps(pcfg.__dict__),
        "cfg": "batch [cond; uncond]; out = cond + mask*(s-1)*(cond-uncond); all: eps channels :C; ref: :min(C,3)"})
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    write_families()


if __name__ == "__main__":
    main()
