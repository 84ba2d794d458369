"""Train a small class-conditional DiT on Fashion-MNIST (pixel space), as DiT/guided-diffusion do.

Model: tools/reference/dit.py's DiT (original facebookresearch/DiT names, adaLN-Zero), used as
is, with DiT's initialize_weights (xavier linears, zeroed adaLN and final layer). The "latent"
is the 28x28 grayscale image padded to 32x32 with -1 (background), scaled to [-1, 1], 1 channel.
Label dropout 10% to the null class (row `num_classes`) for classifier-free guidance.

Diffusion: guided-diffusion's GaussianDiffusion as DiT configures it (create_diffusion
with timestep_respacing=""): 1000 linear betas 1e-4..0.02, uniform t, learn_sigma with
ModelVarType.LEARNED_RANGE and LossType.MSE: loss = MSE(eps) + vb, where vb is the VLB term
(KL to the true posterior, or the discretized decoder NLL at t=0, in bits/dim) computed with the
predicted mean's gradient stopped (only the variance output learns from it). With LossType.MSE
guided-diffusion does not rescale vb (the num_timesteps/1000 factor is RESCALED_MSE only, and is
1 for 1000 steps anyway).

Optimiser: AdamW (weight decay 0), linear warm-up, then by default cosine decay over the time budget
(--lr-decay cosine-steps: over a step count kept in the checkpoint; none: constant), grad clip, EMA of
the weights (shipped). --min-snr-gamma weights the MSE term by min(SNR, gamma)/SNR.
Checkpoints (atomic) every --ckpt-minutes; --resume continues from the last one (--init-from starts
from a weights folder when there is none); --max-minutes bounds the total training time over all
resumed runs, after which the EMA weights are written to <out>/model.safetensors with config.json
and training.json. tools/train/train_best.py runs this in chunks and keeps the best-scoring weights.

    OMP_NUM_THREADS=2 /usr/bin/python3 tools/train/train_dit.py --out models/fashion-dit --max-minutes 115
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
# read when the libraries load (see bench/torch_sampling.py): OpenBLAS's own pool + passive libgomp
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
from dit import DiT, DiTConfig  # noqa: E402
import st  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


# ---------------------------------------------------------------- data

def read_idx(path):
    """idx file (optionally .gz) -> np.ndarray (uint8)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    assert magic >> 8 == 0x08, f"{path}: not a uint8 idx file"
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    return np.frombuffer(data, dtype=np.uint8, offset=off).reshape(shape)


def find_file(stem, data_dir=DATA_DIR):
    for name in (stem, stem + ".gz"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem}[.gz] not in {data_dir} (apt-get install dataset-fashion-mnist)")


def load_split(split, data_dir=DATA_DIR):
    """split 'train' | 't10k' -> (images uint8 [N,28,28], labels int64 [N])."""
    x = read_idx(find_file(f"{split}-images-idx3-ubyte", data_dir))
    y = read_idx(find_file(f"{split}-labels-idx1-ubyte", data_dir))
    return x, y.astype(np.int64)


def to_model_space(u8):
    """uint8 [N,28,28] -> float32 [N,1,32,32] in [-1,1], padded with -1 (background)."""
    x = torch.from_numpy(np.array(u8, dtype=np.uint8)).float().div_(127.5).sub_(1.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    return x[:, None]


# ---------------------------------------------------------------- diffusion (guided-diffusion, DiT settings)

def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered_x + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered_x - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


class Diffusion:
    """The subset of guided-diffusion's GaussianDiffusion that training needs (float64 tables).

    The tables live on the training device: indexing a CPU table with a GPU t would copy it there on
    every lookup, and each such copy waits for the GPU to finish its queue."""

    def __init__(self, steps=1000, beta_start=1e-4, beta_end=0.02, device="cpu"):
        betas = np.linspace(beta_start, beta_end, steps, dtype=np.float64)
        self.num_timesteps = steps
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        t = {
            "betas": betas,
            "sqrt_ac": np.sqrt(ac),
            "sqrt_1m_ac": np.sqrt(1.0 - ac),
            "sqrt_recip_ac": np.sqrt(1.0 / ac),
            "sqrt_recipm1_ac": np.sqrt(1.0 / ac - 1),
            "post_logvar_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "post_c1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "post_c2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
            "log_betas": np.log(betas),
            "snr": ac / (1.0 - ac),
        }
        self.tab = {k: torch.from_numpy(v).to(device) for k, v in t.items()}

    def g(self, name, t, like):
        return self.tab[name][t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0, t, noise):
        return self.g("sqrt_ac", t, x0) * x0 + self.g("sqrt_1m_ac", t, x0) * noise

    def posterior(self, x0, xt, t):
        mean = self.g("post_c1", t, xt) * x0 + self.g("post_c2", t, xt) * xt
        return mean, self.g("post_logvar_clipped", t, xt)

    def training_losses(self, model_out, x0, xt, t, noise, min_snr_gamma=0.0):
        """model_out [N, 2C, H, W] (eps, v). Returns per-sample (loss, mse, vb); mse is unweighted.

        min_snr_gamma > 0: Min-SNR-gamma weighting (Hang et al. 2023) of the eps MSE, min(SNR, gamma) / SNR
        for an eps-predicting model: the many nearly noise-free timesteps, whose easy targets otherwise
        dominate the gradient direction, count less. Only the MSE term is weighted; vb trains only the
        variance output (its mean is detached) and keeps its own scale, as in the paper's DiT runs."""
        c = x0.shape[1]
        eps, v = model_out[:, :c], model_out[:, c:]
        # vb with the mean's gradient stopped (guided-diffusion's frozen_out)
        eps_d = eps.detach()
        min_log = self.g("post_logvar_clipped", t, xt)
        max_log = self.g("log_betas", t, xt)
        frac = (v + 1) / 2
        model_logvar = frac * max_log + (1 - frac) * min_log
        pred_x0 = self.g("sqrt_recip_ac", t, xt) * xt - self.g("sqrt_recipm1_ac", t, xt) * eps_d
        model_mean, _ = self.posterior(pred_x0, xt, t)
        true_mean, true_logvar = self.posterior(x0, xt, t)
        kl = normal_kl(true_mean, true_logvar, model_mean, model_logvar).mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar).mean(dim=(1, 2, 3)) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
        if min_snr_gamma > 0:
            snr = self.tab["snr"][t].to(mse.dtype)
            return mse * snr.clamp(max=min_snr_gamma) / snr + vb, mse, vb
        return mse + vb, mse, vb


# ---------------------------------------------------------------- model

def build_model(cfg: DiTConfig):
    model = DiT(cfg, "original")
    model.pos_embed = model.pos_embed.float()  # reference keeps float64 for goldens; train in fp32
    # DiT's initialize_weights
    def _basic(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
    model.apply(_basic)
    w = model.x_embedder.proj.weight.data
    nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
    nn.init.constant_(model.x_embedder.proj.bias, 0)
    nn.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    for blk in model.blocks:
        nn.init.constant_(blk.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(blk.adaLN_modulation[-1].bias, 0)
    nn.init.constant_(model.final_layer.adaLN_modulation[-1].weight, 0)
    nn.init.constant_(model.final_layer.adaLN_modulation[-1].bias, 0)
    nn.init.constant_(model.final_layer.linear.weight, 0)
    nn.init.constant_(model.final_layer.linear.bias, 0)
    return model


def model_forward(model, x, t, y):
    """Batched forward with per-sample t (the reference's forward_full takes [N] t too)."""
    c = model.t_embedder(t.float(), "original") + model.y_embedder(y)
    h = model.tokens(x)
    for blk in model.blocks:
        h, _, _ = blk(h, c, 1e-6)
    return model.final(h, c)


# ---------------------------------------------------------------- io helpers

def atomic_torch_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_weights(ema, cfg, out_dir, training):
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().float().cpu().numpy() for k, v in ema.state_dict().items()}  # pos_embed not persistent
    tmp = os.path.join(out_dir, "model.safetensors.tmp")
    st.save(tmp, sd, metadata={"format": "pt", "convention": "original", "weights": "ema"})
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    config = {
        "depth": cfg.depth, "hidden_size": cfg.hidden_size, "num_heads": cfg.num_heads,
        "patch_size": cfg.patch_size, "input_size": cfg.input_size, "in_channels": cfg.in_channels,
        "num_classes": cfg.num_classes, "learn_sigma": cfg.learn_sigma,
        "space": "pixel", "convention": "original",
        "class_names": CLASS_NAMES,
        "pixel_range": [-1.0, 1.0], "pad": {"from": 28, "to": 32, "value": -1.0},
        "diffusion": {"steps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
                      "var_type": "learned_range"},
    }
    atomic_json(config, os.path.join(out_dir, "config.json"))
    atomic_json(training, os.path.join(out_dir, "training.json"))


# ---------------------------------------------------------------- main

LR_REF_BATCH = 128  # the batch the default --lr was tuned at
BATCH_SCALES = {"none": lambda r: 1.0, "sqrt": math.sqrt, "linear": lambda r: r}


def lr_at(a, step, opt_from, elapsed, total_steps):
    """The lr of the step after `step`; opt_from: the step the optimiser state began (warm-up and
    cosine-steps count from it)."""
    lr = a.lr * BATCH_SCALES[a.lr_batch_scale](a.batch / LR_REF_BATCH)
    lr *= min(1.0, (step - opt_from + 1) / max(1, a.warmup))
    if a.lr_decay == "cosine":  # by progress through the budget (time, or steps if --max-steps)
        prog = elapsed / (a.max_minutes * 60.0)
        if a.max_steps:
            prog = max(prog, step / a.max_steps)
    elif a.lr_decay == "cosine-steps":
        prog = (step - opt_from) / max(1, total_steps - opt_from)
    else:
        return lr
    prog = min(1.0, prog)
    return lr * (a.lr_min_frac + (1 - a.lr_min_frac) * 0.5 * (1 + math.cos(math.pi * prog)))


def init_from_weights(folder, model, ema, n):
    """Load a weights folder's EMA into model and EMA; returns (step, epoch, pos, images, elapsed_s, runs)."""
    sd, _ = st.load(os.path.join(folder, "model.safetensors"))
    sd = {k: torch.from_numpy(v) for k, v in sd.items()}
    model.load_state_dict(sd)
    ema.load_state_dict(sd)
    with open(os.path.join(folder, "training.json")) as f:
        tr = json.load(f)
    step, batch = tr["steps"], tr["args"]["batch"]
    # where the recorded runs left the seeded epoch permutations (they took whole batches, dropping the tail)
    epoch, rem = divmod(step, n // batch)
    return step, epoch, rem * batch, tr["images_seen"], tr["minutes"] * 60.0, tr["runs"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "models", "fashion-dit"))
    ap.add_argument("--data", default=DATA_DIR, help="folder with Fashion-MNIST's train-{images-idx3,labels-idx1}-ubyte[.gz]")
    ap.add_argument("--ckpt-dir", default=None, help="default: <this dir>/checkpoints/<basename of --out>")
    ap.add_argument("--log", default=None, help="loss log (jsonl); default: <this dir>/logs/<basename of --out>.jsonl")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--heads", type=int, default=5)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=6e-4, help=f"peak lr at batch {LR_REF_BATCH} (see --lr-batch-scale)")
    ap.add_argument("--lr-batch-scale", choices=list(BATCH_SCALES), default="none",
                    help=f"scale --lr by (batch/{LR_REF_BATCH})^1/2 (sqrt, the usual rule for Adam) or linearly")
    ap.add_argument("--warmup", type=int, default=200,
                    help="linear lr warm-up steps, counted from the step the optimiser state started (0, or --init-from's)")
    ap.add_argument("--lr-decay", choices=["cosine", "cosine-steps", "none"], default="cosine",
                    help="cosine: decay to lr*--lr-min-frac over the time budget (progress = elapsed/max-minutes, "
                         "so a resume with a larger budget restarts the decay from a higher lr); cosine-steps: over "
                         "the optimiser's steps up to --lr-total-steps, kept in the checkpoint so a resume continues "
                         "it; none: constant after the warm-up")
    ap.add_argument("--lr-total-steps", type=int, default=0,
                    help="cosine-steps: the global step at which the lr reaches its floor (default on --resume: the "
                         "checkpoint's)")
    ap.add_argument("--lr-min-frac", type=float, default=0.1)
    ap.add_argument("--min-snr-gamma", type=float, default=0.0,
                    help="weight the eps MSE by min(SNR, gamma)/SNR (Min-SNR-gamma, Hang et al. 2023; 5 in the "
                         "paper); 0: unweighted, as the shipped weights were trained")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--label-dropout", type=float, default=0.1)
    ap.add_argument("--flip", type=int, default=1, help="random horizontal flips (1) or not (0)")
    ap.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm (0: off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=115.0, help="total training time over all resumes")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--weights-minutes", type=float, default=0,
                    help="also write the EMA weights so far to --out every this many minutes (0: only at the end), so "
                         "a run killed before its end (a time-limited remote call) still leaves usable weights")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--resume", action="store_true", help="continue from <ckpt-dir>/last.pt if present")
    ap.add_argument("--init-from", default=None,
                    help="when there is no checkpoint to resume: start model and EMA from the EMA weights a run of "
                         "this script wrote to this folder (model.safetensors, training.json), with a fresh optimiser "
                         "(warm-up again); steps, epochs, minutes and runs continue that folder's record. For the "
                         "shipped model, whose checkpoint was not kept")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: forward under autocast (bf16 matmuls, fp32 weights, optimiser and loss); "
                         "1.76x the images/s of fp32 on an AVX512-BF16 CPU")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--bench-seconds", type=float, default=0, help="only measure training throughput, write nothing")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    name = os.path.basename(os.path.normpath(a.out))
    ckpt_dir = a.ckpt_dir or os.path.join(HERE, "checkpoints", name)
    log_path = a.log or os.path.join(HERE, "logs", name + ".jsonl")
    cfg = DiTConfig(depth=a.depth, hidden_size=a.hidden, num_heads=a.heads, patch_size=a.patch,
                    input_size=32, in_channels=1, num_classes=10, learn_sigma=True)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    model = build_model(cfg).to(dev)
    ema = build_model(cfg).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    diff = Diffusion(device=dev)

    xu8, ylab = load_split("train", a.data)
    data = to_model_space(xu8).to(dev)
    labels = torch.from_numpy(ylab).to(dev)
    n = data.shape[0]

    step, epoch, pos, elapsed_prev = 0, 0, 0, 0.0
    images = 0  # seen so far: steps * batch unless the batch changed between runs
    opt_from, total_steps = 0, a.lr_total_steps
    # every invocation that contributed to these weights, in order (a resumed run adds its own)
    this_run = {"argv": sys.argv[1:], "from_step": 0}
    runs = []
    ckpt_path = os.path.join(ckpt_dir, "last.pt")
    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=dev)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, epoch, pos, elapsed_prev = ck["step"], ck["epoch"], ck["pos"], ck["elapsed_s"]
        images = ck.get("images", step * a.batch)
        opt_from = ck.get("opt_from_step", 0)
        total_steps = a.lr_total_steps or ck.get("lr_total_steps", 0)
        torch.set_rng_state(ck["rng"].cpu())  # map_location moved it to the device
        if ck.get("cuda_rng") is not None and dev.type == "cuda":
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), dev)
        runs = ck.get("runs", [{"argv": ["--out", "models/fashion-dit", "--max-minutes", "115"], "from_step": 0}])
        this_run["from_step"] = step
        print(f"resumed from {ckpt_path}: step {step}, epoch {epoch}, {elapsed_prev / 60:.1f} min done", flush=True)
    elif a.init_from:
        step, epoch, pos, images, elapsed_prev, runs = init_from_weights(a.init_from, model, ema, n)
        opt_from = step
        this_run.update(from_step=step, init_from=a.init_from)
        # the recorded RNG state is gone with the checkpoint; a stream of its own for this continuation
        torch.manual_seed(a.seed * 1000003 + step)
        print(f"initialised from {a.init_from}: step {step}, epoch {epoch}, {elapsed_prev / 60:.1f} min done; "
              f"fresh optimiser", flush=True)
    elif a.resume:
        print(f"--resume: no checkpoint at {ckpt_path}, starting fresh", flush=True)
    if a.lr_decay == "cosine-steps" and total_steps <= step:
        print(f"--lr-decay cosine-steps: --lr-total-steps ({total_steps}) must be above the start step {step}",
              file=sys.stderr)
        sys.exit(2)

    print(f"config {cfg}  params {n_params} ({n_params * 4 / 2**20:.2f} MiB f32)  batch {a.batch}  "
          f"lr {a.lr}  device {dev}  threads {torch.get_num_threads()}", flush=True)

    def perm_for(ep):
        g = torch.Generator().manual_seed(a.seed * 100003 + ep)
        return torch.randperm(n, generator=g).to(dev)

    perm = perm_for(epoch)
    if a.bench_seconds <= 0:
        os.makedirs(ckpt_dir, exist_ok=True)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logf = open(log_path, "a") if a.bench_seconds <= 0 else None

    def save_ckpt(elapsed):
        atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                           "step": step, "epoch": epoch, "pos": pos, "elapsed_s": elapsed, "images": images,
                           "rng": torch.get_rng_state(), "args": vars(a), "runs": runs + [this_run], "config": cfg.__dict__,
                           "opt_from_step": opt_from, "lr_total_steps": total_steps,
                           # on a GPU the noise, t, flips and label dropout come from the device's generator
                           "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}, ckpt_path)

    def sync():
        """Waits for the GPU's queued work, so that a timing includes it."""
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def training_record(elapsed):
        return {
            "steps": step, "epochs": round(images / n, 3), "images_seen": images,
            "minutes": round(elapsed / 60, 2), "final_loss": last_loss,
            "params": n_params, "weights": "ema", "ema_decay": a.ema,
            "dataset": "Fashion-MNIST train (60k), Debian dataset-fashion-mnist",
            "device": str(dev), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "args": {k: v for k, v in vars(a).items() if k not in ("out", "ckpt_dir", "log", "data")},
            "runs": runs + [this_run],
            "loss": "guided-diffusion training_losses: MSE(eps) + vb (learned-range variance, mean gradient stopped)"
                    + (f"; MSE weighted by min(SNR, {a.min_snr_gamma})/SNR" if a.min_snr_gamma > 0 else ""),
        }

    t_start = time.time()
    last_ckpt = last_weights = t_start
    budget_s = a.max_minutes * 60.0
    # loss, mse, vb summed on the device and read at logging time only: reading a GPU value every step
    # would make the host wait for the GPU instead of queueing the next step
    acc, acc_k = torch.zeros(3, dtype=torch.float64, device=dev), 0
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    last_loss = None
    bench_t0, bench_steps = None, 0
    model.train()
    while True:
        elapsed = elapsed_prev + (time.time() - t_start)
        if a.bench_seconds <= 0 and (elapsed >= budget_s or (a.max_steps and step >= a.max_steps)):
            break
        if a.bench_seconds > 0 and bench_t0 is not None and time.time() - bench_t0 >= a.bench_seconds:
            break
        if pos + a.batch > n:
            epoch, pos = epoch + 1, 0
            perm = perm_for(epoch)
        idx = perm[pos:pos + a.batch]
        pos += a.batch
        x0 = data[idx]
        y = labels[idx]
        if a.flip:
            f = torch.rand(x0.shape[0], device=dev) < 0.5
            x0 = torch.where(f[:, None, None, None], x0.flip(-1), x0)
        if a.label_dropout > 0:
            drop = torch.rand(y.shape[0], device=dev) < a.label_dropout
            y = torch.where(drop, torch.full_like(y, cfg.num_classes), y)
        t = torch.randint(0, diff.num_timesteps, (x0.shape[0],), device=dev)
        noise = torch.randn_like(x0)
        xt = diff.q_sample(x0, t, noise)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            out = model_forward(model, xt, t, y)
        loss, mse, vb = diff.training_losses(out.float(), x0, xt, t, noise, a.min_snr_gamma)
        loss = loss.mean()

        lr = lr_at(a, step, opt_from, elapsed, total_steps)
        for gp in opt.param_groups:
            gp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model_params, a.grad_clip) if a.grad_clip > 0 else None
        opt.step()
        step += 1
        images += x0.shape[0]
        with torch.no_grad():
            d = min(a.ema, (1 + step) / (10 + step))
            torch._foreach_mul_(ema_params, d)  # one kernel per op over all tensors, not one per tensor
            torch._foreach_add_(ema_params, model_params, alpha=1 - d)

        if a.bench_seconds > 0:
            if step == this_run["from_step"] + 3:
                sync()
                bench_t0, bench_steps = time.time(), 0
            elif bench_t0 is not None:
                bench_steps += 1
            continue

        acc += torch.stack([loss.detach(), mse.detach().mean(), vb.detach().mean()]).double()
        acc_k += 1
        if step % a.log_every == 0:
            mean = (acc / acc_k).tolist()
            rec = {"step": step, "epoch": round(epoch + pos / n, 4), "loss": mean[0],
                   "mse": mean[1], "vb": mean[2], "lr": lr,
                   "grad_norm": float(gnorm) if gnorm is not None else float("nan"),
                   "minutes": round(elapsed / 60, 2)}
            last_loss = rec
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
            acc.zero_()
            acc_k = 0
        if time.time() - last_ckpt >= a.ckpt_minutes * 60:
            save_ckpt(elapsed_prev + time.time() - t_start)
            last_ckpt = time.time()
            print(f"checkpoint step {step} -> {ckpt_path}", flush=True)
        if a.weights_minutes > 0 and time.time() - last_weights >= a.weights_minutes * 60:
            write_weights(ema, cfg, a.out, training_record(elapsed_prev + time.time() - t_start))
            last_weights = time.time()
            print(f"weights so far (step {step}) -> {a.out}", flush=True)

    if a.bench_seconds > 0:
        sync()
        dt = time.time() - bench_t0
        ips = bench_steps * a.batch / dt
        print(json.dumps({"depth": a.depth, "hidden": a.hidden, "heads": a.heads, "patch": a.patch,
                          "batch": a.batch, "params": n_params, "steps": bench_steps, "seconds": round(dt, 1),
                          "steps_per_s": round(bench_steps / dt, 3), "images_per_s": round(ips, 1),
                          "epochs_per_2h": round(ips * 7200 / n, 2)}), flush=True)
        return

    elapsed = elapsed_prev + (time.time() - t_start)
    save_ckpt(elapsed)
    write_weights(ema, cfg, a.out, training_record(elapsed))
    print(f"done: step {step}, {elapsed / 60:.1f} min; wrote {a.out}/model.safetensors", flush=True)


if __name__ == "__main__":
    main()
