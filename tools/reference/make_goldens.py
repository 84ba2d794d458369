"""Writes fixtures/: random-weight DiT and VAE checkpoints (original and diffusers layouts) and goldens.

    OMP_NUM_THREADS=2 /usr/bin/python3 tools/reference/make_goldens.py

Weights are drawn with fixed seeds, rounded to fp16-representable values and stored as F32;
all goldens are computed in float64 from exactly those values and stored as F32.
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from dit import DiT, DiTConfig, cfg_batch, diffusers_config, guide, pos_embed_2d, timestep_sinusoid, to_diffusers  # noqa: E402
from vae import VAEDecoder, vae_config  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(ROOT, "fixtures")

CONFIGS = {
    "tiny": (DiTConfig(depth=2, hidden_size=64, num_heads=4, patch_size=2, input_size=8, in_channels=4,
                       num_classes=10, learn_sigma=True), dict(seed=1, labels=[3, 7], pos_embed=True, vae=True)),
    "pixel": (DiTConfig(depth=3, hidden_size=96, num_heads=3, patch_size=4, input_size=16, in_channels=1,
                        num_classes=5, learn_sigma=True), dict(seed=2, labels=[1, 4], pos_embed=False, vae=False)),
}
T_FULL, T_REUSE, CFG_SCALE, B = 421.0, [417.0, 413.5], 4.0, 2
T_KERNEL = [0.0, 1.0, 499.5, 999.0]
VAE_SEED = 3


def gen(seed):
    return torch.Generator().manual_seed(seed)


def fp16_exact(x):
    return x.float().half().float()


def randomize(module, g):
    """Random weights giving O(1) activations; adaLN / final layers are nonzero on purpose."""
    for name, p in module.named_parameters():
        with torch.no_grad():
            if "norm" in name and p.ndim == 1:  # GroupNorm affine
                base = 1.0 if name.endswith("weight") else 0.0
                v = base + 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith("embedding_table.weight"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif p.ndim >= 2:
                v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
            else:
                v = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(fp16_exact(v))


def f32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def goldens(model, x, y, x_reuse):
    """Everything the golden files hold for one model (float64 math)."""
    cfg = model.cfg
    t = torch.tensor([T_FULL], dtype=torch.float64)
    t_reuse = torch.tensor(T_REUSE, dtype=torch.float64)
    xx, yy = cfg_batch(x.double(), y, cfg.num_classes)
    with torch.no_grad():
        model_out, inter = model.forward_full(xx, t, yy)
        g = {
            "x": x, "t": t, "y": y.double(), "cfg_scale": torch.tensor([CFG_SCALE]), "t_reuse": t_reuse,
            "x_reuse": x_reuse,
            "model_out": model_out,
            "out_ref": guide(model_out, cfg.in_channels, CFG_SCALE, "ref"),
            "out_all": guide(model_out, cfg.in_channels, CFG_SCALE, "all"),
            "c": inter["c"], "tokens": inter["tokens"],
            "kern.t_sinusoid": timestep_sinusoid(torch.tensor(T_KERNEL, dtype=torch.float64), 256, model.convention),
            "kern.pos_embed": pos_embed_2d(cfg.hidden_size, cfg.grid),
        }
        for k, (a, m) in enumerate(zip(inter["attn"], inter["mlp"])):
            g[f"attn.{k}"], g[f"mlp.{k}"] = a, m
        xr, _ = cfg_batch(x_reuse.double(), y, cfg.num_classes)
        for j in range(len(T_REUSE)):
            cj = model.cond(t_reuse[j:j + 1], yy)
            g[f"residual.{j}"] = model.residual(cj, inter["attn"], inter["mlp"])
            raw = model.forward_reuse(xr, t_reuse[j:j + 1], yy, inter["attn"], inter["mlp"])
            g[f"reuse_model_out.{j}"] = raw
            g[f"reuse_out_ref.{j}"] = guide(raw, cfg.in_channels, CFG_SCALE, "ref")
    return f32(g)


def make_vae():
    cfg = vae_config()
    vae = VAEDecoder(cfg)
    randomize(vae, gen(VAE_SEED))
    weights = f32(vae.state_dict())
    z = torch.randn(1, cfg["latent_channels"], 4, 4, generator=gen(VAE_SEED + 100))
    vae.double()
    with torch.no_grad():
        image = vae.decode(z.double())
    out = os.path.join(FIX, "vae-tiny")
    write_json(os.path.join(out, "config.json"), cfg)
    st.save(os.path.join(out, "diffusion_pytorch_model.safetensors"), weights, {"format": "pt"})
    st.save(os.path.join(out, "golden.safetensors"), f32({"z": z, "image": image}),
            {"generator": "tools/reference/make_goldens.py", "decode": "decoder(post_quant_conv(z / scaling_factor))"})
    return out


def make_dit(name, cfg, opts, vae_dir):
    base = os.path.join(FIX, f"dit-{name}")
    model = DiT(cfg, "original")
    randomize(model, gen(opts["seed"]))
    weights = f32(model.state_dict())  # pos_embed is not part of the state dict
    g = gen(opts["seed"] + 100)
    x = torch.randn(B, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
    x_reuse = torch.randn(B, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
    y = torch.tensor(opts["labels"])

    # original layout
    orig = dict(weights)
    if opts["pos_embed"]:
        orig["pos_embed"] = pos_embed_2d(cfg.hidden_size, cfg.grid)[None].float()
    write_json(os.path.join(base, "original", "config.json"), {k: getattr(cfg, k) for k in (
        "depth", "hidden_size", "num_heads", "patch_size", "input_size", "in_channels", "num_classes", "learn_sigma")})
    st.save(os.path.join(base, "original", "model.safetensors"), orig, {"format": "pt"})

    # diffusers layout
    dd = os.path.join(base, "diffusers")
    index = {"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"]}
    if opts["vae"]:
        index["vae"] = ["diffusers", "AutoencoderKL"]
        if os.path.exists(os.path.join(dd, "vae")):
            shutil.rmtree(os.path.join(dd, "vae"))
        os.makedirs(dd, exist_ok=True)
        shutil.copytree(vae_dir, os.path.join(dd, "vae"), ignore=shutil.ignore_patterns("golden*"))
    write_json(os.path.join(dd, "model_index.json"), index)
    write_json(os.path.join(dd, "transformer", "config.json"), diffusers_config(cfg))
    st.save(os.path.join(dd, "transformer", "diffusion_pytorch_model.safetensors"),
            to_diffusers(weights, cfg.depth), {"format": "pt"})

    # goldens, float64 from the stored F32 values
    for conv in ("original", "diffusers"):
        m = DiT(cfg, conv)
        m.load_state_dict(weights)
        m.double()
        meta = {"generator": "tools/reference/make_goldens.py", "convention": conv,
                "config": json.dumps({k: getattr(cfg, k) for k in cfg.__dataclass_fields__}),
                "cfg": "batch [cond; uncond]; out = cond + mask*(s-1)*(cond-uncond); "
                       "ref: eps channels :min(C,3), all: eps channels :C; variance from cond"}
        st.save(os.path.join(base, f"golden-{conv}.safetensors"), goldens(m, x, y, x_reuse), meta)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    vae_dir = make_vae()
    for name, (cfg, opts) in CONFIGS.items():
        make_dit(name, cfg, opts, vae_dir)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(FIX) for f in fs)
    print(f"wrote {FIX} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
