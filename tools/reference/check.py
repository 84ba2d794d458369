"""Self-checks of the fixtures (run after make_goldens.py; not a test suite).

    OMP_NUM_THREADS=2 /usr/bin/python3 tools/reference/check.py

1. original weights + original convention reproduce golden-original (bit-exact after the F32 cast);
2. diffusers weights, read by a separate plain-tensor forward in diffusers' structure
   (separate q/k/v, per-block embedder copies, block 0's embedder for the output layer),
   reproduce golden-diffusers; so does from_diffusers() + DiT("diffusers");
3. FORA literal per-block reuse == final(x0 + R_j) in float64;
4. sinusoid / position embedding layouts against numpy written from the formulas;
5. the VAE golden from the stored weights; safetensors layout (contiguous, 8-aligned data).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from dit import DiT, DiTConfig, cfg_batch, from_diffusers, guide, modulate, unpatchify  # noqa: E402
from make_goldens import CFG_SCALE, CONFIGS, FIX, goldens  # noqa: E402
from vae import VAEDecoder  # noqa: E402


def load64(path):
    t, meta = st.load(path)
    return {k: torch.from_numpy(v).double() for k, v in t.items()}, meta


def maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


def check_layout(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0, path
    h = json.loads(data[8:8 + n])
    h.pop("__metadata__", None)
    spans = sorted(v["data_offsets"] for v in h.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data) - 8 - n, path
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), path


def diffusers_forward(w, cfg, x, t, y):
    """DiTTransformer2DModel forward from diffusers-named weights, written independently of dit.py."""
    d, heads, p = cfg.hidden_size, cfg.num_heads, cfg.patch_size
    lin = lambda h, name: h @ w[name + ".weight"].T + w[name + ".bias"]  # noqa: E731

    def emb(i, t, y):
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / (half - 1))
        a = t[:, None] * freqs
        s = torch.cat([a.cos(), a.sin()], 1)
        pre = f"transformer_blocks.{i}.norm1.emb."
        te = lin(F.silu(lin(s, pre + "timestep_embedder.linear_1")), pre + "timestep_embedder.linear_2")
        return te + w[pre + "class_embedder.embedding_table.weight"][y]

    g = cfg.grid
    h = F.conv2d(x, w["pos_embed.proj.weight"], w["pos_embed.proj.bias"], stride=p).flatten(2).transpose(1, 2)
    # position embedding straight from the formula, numpy
    om = 1 / 10000 ** (np.arange(d // 4) / (d / 4))
    rows, cols = np.divmod(np.arange(g * g), g)
    pe = np.concatenate([np.sin(cols[:, None] * om), np.cos(cols[:, None] * om),
                         np.sin(rows[:, None] * om), np.cos(rows[:, None] * om)], 1)
    h = h + torch.from_numpy(pe)
    t = t.expand(y.shape[0])
    attn, mlp = [], []
    for i in range(cfg.depth):
        b = f"transformer_blocks.{i}."
        m = lin(F.silu(emb(i, t, y)), b + "norm1.linear").chunk(6, 1)
        n = modulate(F.layer_norm(h, (d,), eps=1e-6), m[0], m[1])
        q, k, v = (lin(n, b + f"attn1.to_{c}").reshape(n.shape[0], -1, heads, d // heads).transpose(1, 2) for c in "qkv")
        o = F.softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5, -1) @ v
        a = lin(o.transpose(1, 2).reshape(n.shape[0], -1, d), b + "attn1.to_out.0")
        h = h + m[2][:, None] * a
        n = modulate(F.layer_norm(h, (d,), eps=1e-5), m[3], m[4])
        f = lin(F.gelu(lin(n, b + "ff.net.0.proj"), approximate="tanh"), b + "ff.net.2")
        h = h + m[5][:, None] * f
        attn.append(a)
        mlp.append(f)
    shift, scale = lin(F.silu(emb(0, t, y)), "proj_out_1").chunk(2, 1)
    out = lin(modulate(F.layer_norm(h, (d,), eps=1e-6), shift, scale), "proj_out_2")
    return unpatchify(out, p, cfg.out_channels), attn, mlp


def check_dit(name, cfg):
    base = os.path.join(FIX, f"dit-{name}")
    worst = {}
    # 1. original
    w, _ = load64(os.path.join(base, "original", "model.safetensors"))
    w.pop("pos_embed", None)
    m = DiT(cfg, "original").double()
    m.load_state_dict(w)
    gold, _ = st.load(os.path.join(base, "golden-original.safetensors"))
    x, xr = torch.from_numpy(gold["x"]), torch.from_numpy(gold["x_reuse"])
    y = torch.from_numpy(gold["y"]).long()
    again = goldens(m, x, y, xr)
    assert set(again) == set(gold)
    for k in gold:
        assert np.array_equal(again[k].numpy(), gold[k]), (name, "original", k)

    # 2. diffusers, independent forward and round trip through from_diffusers
    wd, _ = load64(os.path.join(base, "diffusers", "transformer", "diffusion_pytorch_model.safetensors"))
    gd, _ = load64(os.path.join(base, "golden-diffusers.safetensors"))
    xx, yy = cfg_batch(x.double(), y, cfg.num_classes)
    out, attn, mlp = diffusers_forward(wd, cfg, xx, gd["t"], yy)
    worst["indep model_out"] = maxdiff(out, gd["model_out"])
    worst["indep out_all"] = maxdiff(guide(out, cfg.in_channels, CFG_SCALE, "all"), gd["out_all"])
    worst["indep attn/mlp"] = max(max(maxdiff(a, gd[f"attn.{k}"]), maxdiff(f, gd[f"mlp.{k}"]))
                                  for k, (a, f) in enumerate(zip(attn, mlp)))
    md = DiT(cfg, "diffusers").double()
    md.load_state_dict(from_diffusers(wd, cfg.depth))
    again = goldens(md, x, y, xr)
    for k in gd:
        assert np.array_equal(again[k].numpy(), gd[k].float().numpy()), (name, "diffusers", k)
    for k, v in worst.items():
        assert v < 1e-5, (name, k, v)

    # 3. literal per-block reuse == x0 + R_j route, float64
    for conv, model in (("original", m), ("diffusers", md)):
        with torch.no_grad():
            t = torch.tensor([421.0], dtype=torch.float64)
            _, inter = model.forward_full(xx, t, yy)
            xrr, _ = cfg_batch(xr.double(), y, cfg.num_classes)
            for tj in (417.0, 413.5):
                tj = torch.tensor([tj], dtype=torch.float64)
                literal = model.forward_reuse(xrr, tj, yy, inter["attn"], inter["mlp"])
                cj = model.cond(tj, yy)
                route = model.final(model.tokens(xrr) + model.residual(cj, inter["attn"], inter["mlp"]), cj)
                d = maxdiff(literal, route)
                worst[f"reuse route {conv} t={tj.item()}"] = d
                assert d < 1e-12, d
    for k, v in worst.items():
        print(f"  dit-{name}: {k}: max |diff| = {v:.2e}")


def check_kernels():
    for name, (cfg, _) in CONFIGS.items():
        for conv, denom in (("original", 128), ("diffusers", 127)):
            g, _ = st.load(os.path.join(FIX, f"dit-{name}", f"golden-{conv}.safetensors"))
            t = np.array([0, 1, 499.5, 999])[:, None]
            a = t * np.exp(-np.log(1e4) * np.arange(128) / denom)
            assert np.abs(np.concatenate([np.cos(a), np.sin(a)], 1) - g["kern.t_sinusoid"]).max() < 1e-6
            pe = g["kern.pos_embed"].reshape(cfg.grid, cfg.grid, -1)  # [row, col, D]
            half = cfg.hidden_size // 2
            assert np.allclose(pe[:, :, :half], pe[:1, :, :half])  # first half: column only
            assert np.allclose(pe[:, :, half:], pe[:, :1, half:])  # second half: row only
            assert np.allclose(pe[0, 1, :half // 2], np.sin(1 / 10000 ** (np.arange(half // 2) / (half // 2))))
    print("  kernels: sinusoid and pos_embed layouts ok")


def check_vae():
    d = os.path.join(FIX, "vae-tiny")
    cfg = json.load(open(os.path.join(d, "config.json")))
    w, _ = load64(os.path.join(d, "diffusion_pytorch_model.safetensors"))
    v = VAEDecoder(cfg).double()
    v.load_state_dict(w)
    g, _ = st.load(os.path.join(d, "golden.safetensors"))
    with torch.no_grad():
        img = v.decode(torch.from_numpy(g["z"]).double()).float().numpy()
    assert np.array_equal(img, g["image"])
    copy = os.path.join(FIX, "dit-tiny", "diffusers", "vae", "diffusion_pytorch_model.safetensors")
    assert open(copy, "rb").read() == open(os.path.join(d, "diffusion_pytorch_model.safetensors"), "rb").read()
    print("  vae-tiny: decode reproduces golden; dit-tiny/diffusers/vae is identical")


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    for dirpath, _, files in os.walk(FIX):
        for f in files:
            if f.endswith(".safetensors"):
                check_layout(os.path.join(dirpath, f))
    for name, (cfg, _) in CONFIGS.items():
        check_dit(name, cfg)
    check_kernels()
    check_vae()
    print("all checks passed")


if __name__ == "__main__":
    main()
