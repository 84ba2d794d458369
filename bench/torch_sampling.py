"""PyTorch side of the sampling speed benchmark: DiT + FORA's literal per-layer cache.

How the official FORA code (prathebaselva/FORA, DiT only) samples, on the CPU:
  - DiT as in facebookresearch/DiT models.py (nn.Linear / LayerNorm, timm-style attention
    with an explicit q@k^T, softmax, @v; torch 1.13 has no scaled_dot_product_attention);
    the modules are imported from tools/reference/dit.py (dtype-agnostic, original names).
  - per block k, A_k (attention after proj) and M_k (MLP after fc2) are cached ungated for
    the whole CFG batch; a reuse step computes only the block's adaLN modulation from the
    current c = t_emb(t) + y_emb(y) and does x += gate_msa*A_k; x += gate_mlp*M_k.
  - step i counts down from S-1; full when i == S-1 or i % N == 0 (N=1: no caching).
  - DDPM ancestral sampling, learned-range variance, 1000 linear betas respaced to S steps
    (DiT's space_timesteps), model called with the original timestep; CFG as DiT's
    forward_with_cfg: batch [z; z] with labels [y; null], guidance on eps channels 0..2.
Random weights (seeded, std 1/sqrt(fan_in)); only the sampling loop is timed, per N, after
one warm-up model call. Everything but the result goes to stderr.

On a GPU (--device cuda, torch >= 2): attention through F.scaled_dot_product_attention (what
timm's Attention, which DiT's models.py imports, runs by default), the GPU synchronised
before each clock read; --tf32 allows TF32 matmuls and convolutions as DiT's sample.py does
(the official FORA code samples that way, fp32 with TF32); --dtype float16 runs the model in
half precision. Per-step times are not split on a GPU (that would need a sync per step).

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_sampling.py --preset S/2-256 --steps 20 --intervals 1,2,3
    /usr/bin/python3 bench/torch_sampling.py --preset XL/2-256 --steps 10 --intervals 1,2 --json
    /usr/bin/python3 bench/torch_sampling.py --self-test
    python3 bench/torch_sampling.py --device cuda --tf32 --intervals 1,3 --repeats 3 --json
    python3 bench/torch_sampling.py --device cuda --dtype float16 --intervals 1,3 --repeats 3 --json
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
# Both are read when the libraries load, so before `import torch`. Debian's torch runs its
# element-wise ops on libgomp and its GEMMs on OpenBLAS's own pthreads (libblas.so.3 ->
# openblas-pthread): two pools on the same cores. libgomp's default spin-wait keeps its idle
# workers busy while OpenBLAS runs, which measured 2-5x slower full steps on 2 cores; passive
# waiting is the standard setting for that mix. Both can be overridden from the environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools", "reference"))
import fair_blas  # noqa: E402

# The peer runs on its CPU's own BLAS kernels (bench/fair_blas.py says why).
REMOVED_OVERRIDES = fair_blas.unset_overrides()

import torch  # noqa: E402

from dit import DiT, DiTConfig  # noqa: E402

PRESETS = {  # depth, hidden, heads; patch 2, latent 4x32x32, 1000 classes, learn_sigma
    "XL/2-256": (28, 1152, 16),
    "L/2-256": (24, 1024, 16),
    "B/2-256": (12, 768, 12),
    "S/2-256": (12, 384, 6),
}
CFG_SCALE = 1.5
CLASS_LABEL = 207
# FORA paper / DESIGN §1: full steps out of 250 per interval N.
FULL_STEPS_250 = {1: 250, 2: 126, 3: 84, 5: 51, 7: 37, 10: 26}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- schedule (DiT's gaussian_diffusion)

def space_timesteps(num_timesteps, count):
    """DiT/ADM respacing with one section: round(cur) with cur += (T-1)/(S-1), Python round."""
    if count == 1:
        return [0]
    stride = (num_timesteps - 1) / (count - 1)
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += stride
    return sorted(set(taken))


def ddpm_schedule(steps):
    """Per respaced step i (0..S-1): original timestep and the float coefficients of p_sample."""
    betas0 = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar0 = torch.cumprod(1 - betas0, 0)
    use = space_timesteps(1000, steps)
    assert len(use) == steps, f"respacing gave {len(use)} distinct timesteps for S={steps}"
    last, betas = 1.0, []
    for t in use:
        betas.append(1 - abar0[t].item() / last)
        last = abar0[t].item()
    betas = torch.tensor(betas, dtype=torch.float64)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    post_var = betas * (1 - abar_prev) / (1 - abar)
    post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))  # clipped at step 0
    return {
        "timestep": use,
        "sqrt_recip_abar": torch.sqrt(1 / abar).tolist(),
        "sqrt_recipm1_abar": torch.sqrt(1 / abar - 1).tolist(),
        "coef1": (betas * torch.sqrt(abar_prev) / (1 - abar)).tolist(),
        "coef2": ((1 - abar_prev) * torch.sqrt(alphas) / (1 - abar)).tolist(),
        "min_log": post_logvar.tolist(),
        "max_log": torch.log(betas).tolist(),
    }


def is_full_step(i, steps, interval):
    """FORA's static recompute rule; i counts down from steps-1."""
    return i == steps - 1 or i % interval == 0


def count_full_steps(steps, interval):
    return sum(is_full_step(i, steps, interval) for i in range(steps))


# ---------------------------------------------------------------- model with FORA's per-layer cache

def random_dit(preset, dtype, seed=0):
    depth, d, heads = PRESETS[preset]
    cfg = DiTConfig(depth=depth, hidden_size=d, num_heads=heads, patch_size=2, input_size=32,
                    in_channels=4, num_classes=1000, learn_sigma=True)
    torch.manual_seed(seed)
    model = DiT(cfg, "original")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)
            elif p.dim() == 1 or "embedding_table" in name:
                p.normal_(0, 1.0)
            else:
                p.normal_(0, 1 / math.sqrt(p[0].numel()))  # fan_in (Linear and Conv2d)
    return model.to(dtype).eval()


def use_sdpa_attention():
    """Routes dit.Attention through F.scaled_dot_product_attention (fused kernels on a GPU)."""
    import dit
    import torch.nn.functional as F

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d))

    dit.Attention.forward = forward


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fora_forward(model, x, t, y, full, cache):
    """One model call over the CFG batch. Full: run every block, store (A_k, M_k) ungated.
    Reuse: per block only adaLN from the current c, x += gate_msa*A_k + gate_mlp*M_k."""
    c = model.cond(t, y)
    h = model.tokens(x)
    if full:
        for k, blk in enumerate(model.blocks):
            h, a, m = blk(h, c, model.norm2_eps)
            cache[k] = (a, m)
    else:
        for blk, (a, m) in zip(model.blocks, cache):
            h = blk.reuse(h, c, a, m)
    return model.final(h, c)


def forward_with_cfg(model, x, t, y, full, cache, scale):
    """DiT's forward_with_cfg: [half; half] through the model, guidance on eps channels 0..2."""
    half = x[: len(x) // 2]
    out = fora_forward(model, torch.cat([half, half]), t, y, full, cache)
    eps, rest = out[:, :3], out[:, 3:]
    cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
    half_eps = uncond_eps + scale * (cond_eps - uncond_eps)
    return torch.cat([torch.cat([half_eps, half_eps]), rest], dim=1)


def p_sample_loop(model, z, y, sched, interval, gen, step_times=None):
    """step_times: per-step (full, seconds), CPU only (a GPU would need a sync per step)."""
    """DDPM ancestral sampling with learned-range variance over the respaced steps."""
    steps = len(sched["timestep"])
    cache = [None] * len(model.blocks)
    x, C = z, z.shape[1]
    full_steps = 0
    for i in reversed(range(steps)):
        t0 = time.perf_counter()
        full = is_full_step(i, steps, interval)
        full_steps += full
        t = torch.tensor([float(sched["timestep"][i])], dtype=x.dtype, device=x.device)
        out = forward_with_cfg(model, x, t, y, full, cache, CFG_SCALE)
        eps, v = out[:, :C], out[:, C:]
        frac = (v + 1) / 2
        log_var = frac * sched["max_log"][i] + (1 - frac) * sched["min_log"][i]
        x0 = sched["sqrt_recip_abar"][i] * x - sched["sqrt_recipm1_abar"][i] * eps
        mean = sched["coef1"][i] * x0 + sched["coef2"][i] * x
        if i > 0:
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            x = mean + torch.exp(0.5 * log_var) * noise
        else:
            x = mean
        if step_times is not None:
            step_times.append((full, time.perf_counter() - t0))
    return x, full_steps


# ---------------------------------------------------------------- environment report

def blas_report():
    """BLAS_INFO from torch's build config plus the BLAS library actually mapped."""
    cfg = torch.__config__.show()
    info = next((p.split("=", 1)[1] for p in cfg.replace(",", " ").split() if p.startswith("BLAS_INFO=")), "?")
    torch.ones(64, 64) @ torch.ones(64, 64)  # make sure the BLAS is loaded
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in os.path.basename(path).lower():
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return f"BLAS_INFO={info}; loaded: {', '.join(sorted(libs)) or 'none found'}", cfg


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gpu_report(device):
    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    return {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(p.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


# ---------------------------------------------------------------- self-test

def self_test():
    for n, want in FULL_STEPS_250.items():
        got = count_full_steps(250, n)
        assert got == want, f"S=250 N={n}: {got} full steps, want {want}"
    for s in (250, 100, 50, 25, 20, 10):
        ref = [round(k * 999 / (s - 1)) for k in range(s)]  # DESIGN §2: round-half-to-even
        assert space_timesteps(1000, s) == ref, f"respacing differs from round(k*999/(S-1)) at S={s}"
    assert space_timesteps(1000, 250)[:3] == [0, 4, 8] and space_timesteps(1000, 250)[-1] == 999
    # the cached path against the reference's literal reuse step, tiny float64 model
    cfg = DiTConfig(depth=2, hidden_size=32, num_heads=4, patch_size=2, input_size=8, in_channels=4,
                    num_classes=10)
    torch.manual_seed(0)
    model = DiT(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    x, y = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.tensor([3, 10])
    t1, t2 = torch.tensor([500.0], dtype=torch.float64), torch.tensor([496.0], dtype=torch.float64)
    with torch.inference_mode():
        cache = [None] * cfg.depth
        out_full = fora_forward(model, x, t1, y, True, cache)
        ref_full, inter = model.forward_full(x, t1, y)
        assert torch.equal(out_full, ref_full)
        out_reuse = fora_forward(model, x * 0.9, t2, y, False, cache)
        ref_reuse = model.forward_reuse(x * 0.9, t2, y, inter["attn"], inter["mlp"])
        assert torch.allclose(out_reuse, ref_reuse, rtol=0, atol=1e-12)
        sched = ddpm_schedule(20)
        gen = torch.Generator().manual_seed(1)
        z = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
        sample, full = p_sample_loop(model, torch.cat([z, z]), y, sched, 3, gen)  # y = [3; null]
        assert full == count_full_steps(20, 3) and torch.isfinite(sample).all()
    log("self-test ok: full-step counts (S=250), respacing == round(k*999/(S-1)), "
        "cached path == reference reuse step, sampling loop runs")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="XL/2-256", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--intervals", default="1,2,3,5,7,10")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions (CUDA), as DiT's sample.py")
    ap.add_argument("--attention", choices=["explicit", "sdpa"], help="default: sdpa on CUDA, explicit on the CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--self-test", action="store_true", help="check counts, respacing and the cached path; exit")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    blas_kernels = fair_blas.check(REMOVED_OVERRIDES)
    log(f"OpenBLAS: {blas_kernels.get('openblas')}; overrides removed from this process: {blas_kernels['removed'] or 'none'}")
    if args.self_test:
        self_test()
        return
    intervals = [int(n) for n in args.intervals.split(",") if n.strip()]
    assert all(n >= 1 for n in intervals) and args.steps >= 2 and args.repeats >= 1
    if args.steps == 250:
        for n in intervals:
            if n in FULL_STEPS_250:
                assert count_full_steps(250, n) == FULL_STEPS_250[n]

    device = torch.device(args.device)
    attention = args.attention or ("sdpa" if device.type == "cuda" else "explicit")
    if attention == "sdpa":
        use_sdpa_attention()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    blas, cfg_text = blas_report()
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {blas}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    keep = ("BLAS_INFO=", "LAPACK_INFO=", "USE_MKLDNN=", "USE_OPENMP=", "TORCH_VERSION=")
    log("torch.__config__.show() (excerpt): "
        + ", ".join(p for p in cfg_text.replace(",", " ").split() if p.startswith(keep))
        + "; " + "; ".join(line.strip(" -") for line in cfg_text.splitlines() if "CPU capability" in line))

    dtype = getattr(torch, args.dtype)
    t_build = time.perf_counter()
    model = random_dit(args.preset, dtype, args.seed).to(device)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"DiT-{args.preset}: {nparams / 1e6:.1f}M params, {args.dtype}, built in {time.perf_counter() - t_build:.1f}s")
    sched = ddpm_schedule(args.steps)

    results = []
    with torch.inference_mode():
        gen = torch.Generator(device=device).manual_seed(args.seed + 1)
        z = torch.randn(1, 4, 32, 32, generator=gen, device=device).to(dtype)
        y = torch.tensor([CLASS_LABEL, 1000], device=device)  # [y; null]
        zz = torch.cat([z, z])
        for n in intervals:
            fora_forward(model, zz, torch.tensor([999.0], dtype=dtype, device=device), y, True, [None] * len(model.blocks))  # warm-up
            runs, step_times, full_steps, finite = [], [], 0, True
            for _ in range(args.repeats):
                gen.manual_seed(args.seed + 2)
                sync(device)
                t0 = time.perf_counter()
                sample, full_steps = p_sample_loop(model, zz, y, sched, n, gen, step_times if device.type == "cpu" else None)
                sync(device)
                runs.append(time.perf_counter() - t0)
                finite = finite and bool(torch.isfinite(sample).all())
            assert full_steps == count_full_steps(args.steps, n)
            full_ms = [s * 1e3 for f, s in step_times if f]
            reuse_ms = [s * 1e3 for f, s in step_times if not f]
            r = {
                "interval": n,
                "full_steps": full_steps,
                "reuse_steps": args.steps - full_steps,
                "seconds": statistics.median(runs),
                "seconds_min": min(runs),
                "seconds_runs": runs,
                "full_step_ms": statistics.median(full_ms) if full_ms else None,
                "reuse_step_ms": statistics.median(reuse_ms) if reuse_ms else None,
                "finite": finite,
            }
            results.append(r)
            log(f"N={n}: {r['seconds']:.3f} s/image, {full_steps} full + {r['reuse_steps']} reuse steps"
                + (f", median full step {r['full_step_ms']:.1f} ms" if full_ms else "")
                + (f", reuse step {r['reuse_step_ms']:.2f} ms" if reuse_ms else "")
                + ("" if finite else "  (non-finite sample!)"))

    base = next((r["seconds"] for r in results if r["interval"] == 1), None)
    for r in results:
        r["speedup_vs_n1"] = base / r["seconds"] if base else None
    report = {
        "implementation": "pytorch",
        "torch": torch.__version__,
        "blas": blas,
        "blas_kernels": blas_kernels,
        "threads": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ},
        "preset": args.preset,
        "steps": args.steps,
        "dtype": args.dtype,
        "device": str(device),
        "tf32": bool(args.tf32) if device.type == "cuda" else None,
        "attention": attention,
        "gpu": gpu_report(device),
        "batch": 1,
        "cfg_scale": CFG_SCALE,
        "sampler": "ddpm-learned-range",
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"DiT-{args.preset}, {args.steps} steps, PyTorch {torch.__version__} {args.dtype}, "
          f"{report['threads']} threads, {blas}, {report['env']}; {report['machine']}")
    print("| N | full steps | reuse steps | s/image | full step ms | reuse step ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        reuse = f"{r['reuse_step_ms']:.2f}" if r["reuse_step_ms"] is not None else "-"
        sp = f"{r['speedup_vs_n1']:.2f}x" if r["speedup_vs_n1"] else "-"
        full = f"{r['full_step_ms']:.1f}" if r["full_step_ms"] is not None else "-"
        print(f"| {r['interval']} | {r['full_steps']} | {r['reuse_steps']} | {r['seconds']:.2f} | "
              f"{full} | {reuse} | {sp} |")


if __name__ == "__main__":
    main()
