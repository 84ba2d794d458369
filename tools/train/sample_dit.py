"""Sample the trained Fashion-MNIST DiT with DiT's sampler (check of the shipped weights).

DDPM ancestral sampling with learned-range variance over S respaced steps (guided-diffusion's
space_timesteps, model called with the original timestep), CFG as DiT's forward_with_cfg
(batch [z; z], labels [y; null]; the single channel is guided). Writes a PNG grid (one row
per class, --per-class columns) and the samples as .npy next to it.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/train/sample_dit.py --weights models/fashion-dit --steps 50 --out /tmp/grid.png
    # from a training checkpoint (EMA weights):
    OMP_NUM_THREADS=1 /usr/bin/python3 tools/train/sample_dit.py --ckpt tools/train/checkpoints/fashion-dit/last.pt --out /tmp/grid.png
"""
import argparse
import json
import os
import sys

THREADS = int(os.environ.get("OMP_NUM_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
from dit import DiT, DiTConfig  # noqa: E402
import st  # noqa: E402

CFG_KEYS = ["depth", "hidden_size", "num_heads", "patch_size", "input_size", "in_channels", "num_classes", "learn_sigma"]


def load_model(weights_dir=None, ckpt=None):
    if ckpt:
        ck = torch.load(ckpt, map_location="cpu")
        cfg = DiTConfig(**ck["config"])
        sd = ck["ema"]
    else:
        c = json.load(open(os.path.join(weights_dir, "config.json")))
        cfg = DiTConfig(**{k: c[k] for k in CFG_KEYS})
        w, _ = st.load(os.path.join(weights_dir, "model.safetensors"))
        sd = {k: torch.from_numpy(v) for k, v in w.items()}
    m = DiT(cfg, "original")
    m.pos_embed = m.pos_embed.float()
    m.load_state_dict(sd, strict=True)
    return m.eval(), cfg


def space_timesteps(num, s):
    """guided-diffusion space_timesteps(1000, [s]) for a single section."""
    frac = (num - 1) / (s - 1) if s > 1 else 0
    return sorted({int(round(i * frac)) for i in range(s)})


@torch.no_grad()
def sample(model, cfg, labels, steps=250, cfg_scale=4.0, seed=0):
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    ac_full = np.cumprod(1 - betas)
    use = space_timesteps(1000, steps)
    last, nb = 1.0, []
    for i in use:
        nb.append(1 - ac_full[i] / last)
        last = ac_full[i]
    b = np.array(nb)
    a = 1 - b
    ac = np.cumprod(a)
    acp = np.append(1.0, ac[:-1])
    pv = b * (1 - acp) / (1 - ac)
    plv = np.log(np.append(pv[1], pv[1:]))
    c1 = b * np.sqrt(acp) / (1 - ac)
    c2 = (1 - acp) * np.sqrt(a) / (1 - ac)
    g = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    x = torch.randn(n, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g, dtype=torch.float64)
    y2 = torch.cat([labels, torch.full_like(labels, cfg.num_classes)])
    for i in reversed(range(len(use))):
        xin = torch.cat([x, x]).float()
        out, _ = model.forward_full(xin, torch.tensor([float(use[i])]), y2)
        out = out.double()
        c = cfg.in_channels
        cond, unc = out[:n], out[n:]
        eps = unc[:, :c] + cfg_scale * (cond[:, :c] - unc[:, :c]) if cfg_scale != 1 else cond[:, :c]
        v = cond[:, c:]
        frac = (v + 1) / 2
        logvar = frac * np.log(b[i]) + (1 - frac) * plv[i]
        x0 = (np.sqrt(1 / ac[i]) * x - np.sqrt(1 / ac[i] - 1) * eps).clamp(-1, 1)
        mean = c1[i] * x0 + c2[i] * x
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
        x = mean + (float(i > 0)) * torch.exp(0.5 * logvar) * noise
    return x.clamp(-1, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(REPO, "models", "fashion-dit"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--cfg-scale", type=float, default=4.0)
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/fashion-dit-grid.png")
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    model, cfg = load_model(a.weights, a.ckpt)
    labels = torch.arange(cfg.num_classes).repeat_interleave(a.per_class)
    x = sample(model, cfg, labels, a.steps, a.cfg_scale, a.seed)
    img = ((x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    h = w = cfg.input_size
    grid = img.reshape(cfg.num_classes, a.per_class, h, w).transpose(0, 2, 1, 3).reshape(cfg.num_classes * h, a.per_class * w)
    from PIL import Image
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(a.out)
    np.save(os.path.splitext(a.out)[0] + ".npy", x.float().numpy())
    border = np.concatenate([x[:, 0, :2].flatten(), x[:, 0, -2:].flatten()]).mean()
    print(json.dumps({"out": a.out, "n": int(x.shape[0]), "mean": float(x.mean()), "pad_rows_mean": float(border)}))


if __name__ == "__main__":
    main()
