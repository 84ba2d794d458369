"""Golden values for tests/samplers from the reference implementations themselves.

Runs facebookresearch/DiT's diffusion package (GaussianDiffusion / SpacedDiffusion: p_sample_loop,
ddim_sample_loop) and LuChengTHU/dpm-solver's dpm_solver_pytorch.py (DPM-Solver++ multistep, as
PixArt-alpha ships it) on a small toy model, in float64, and prints JSON. Neither repository is
part of this project: point DIT and DPM at checkouts of them.

    DIT=/path/to/DiT DPM=/path/to/dpm-solver OMP_NUM_THREADS=2 /usr/bin/python3 \
        tests/samplers/reference_samplers.py > tests/samplers/reference_golden.json

Two deliberate changes to the reference runs, both to compare formulas rather than precision:
- guided-diffusion casts each schedule coefficient to float32 (_extract_into_tensor's .float());
  here it stays float64, as in lib/samplers.
- th.randn_like (the noise of p_sample / ddim_sample) draws from the per-sample generators of
  lib/random (tests/random/reference_rng.py), sample by sample, C*H*W values each, so the
  TypeScript samplers see the same noise. The initial latent is drawn from the same generators
  first.

The toy model (mirrored in tests/samplers/reference_test.ts), with t the model time, c the
channel and j = h*W + w the position:
    eps = 0.6 x + 0.3 sin(1.7 x + 0.01 t + 0.5 c + 0.05 j)
    v   = tanh(0.5 x - 0.001 t + 0.1 c)          (variance values, learn_sigma only)
"""
import json
import os
import sys

import numpy as np
import torch as th

sys.path.insert(0, os.environ["DIT"])
sys.path.insert(0, os.environ["DPM"])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "random"))

from reference_rng import Pcg32, splitmix64_output  # noqa: E402
from diffusion import create_diffusion  # noqa: E402
from diffusion import gaussian_diffusion as gd  # noqa: E402
from diffusion.respace import space_timesteps  # noqa: E402
import dpm_solver_pytorch as dpm  # noqa: E402

th.set_default_dtype(th.float64)
B, C, H, W = 2, 2, 2, 3
SEED = 2024


def extract64(arr, timesteps, broadcast_shape):
    res = th.from_numpy(arr)[timesteps]
    while len(res.shape) < len(broadcast_shape):
        res = res[..., None]
    return res + th.zeros(broadcast_shape, dtype=th.float64)


gd._extract_into_tensor = extract64


def toy(x, t, learn_sigma):
    t = th.as_tensor(t, dtype=th.float64).reshape(-1, 1, 1, 1)
    c = th.arange(C, dtype=th.float64).reshape(1, C, 1, 1)
    j = th.arange(H * W, dtype=th.float64).reshape(1, 1, H, W)
    eps = 0.6 * x + 0.3 * th.sin(1.7 * x + 0.01 * t + 0.5 * c + 0.05 * j)
    if not learn_sigma:
        return eps
    v = th.tanh(0.5 * x - 0.001 * t + 0.1 * c)
    return th.cat([eps, v], dim=1)


class Noise:
    """th.randn_like replacement drawing from one generator per sample."""

    def __init__(self, seed):
        self.rngs = [Pcg32(splitmix64_output(seed, b), 54) for b in range(B)]

    def draw(self):
        out = np.array([[self.rngs[b].normal() for _ in range(C * H * W)] for b in range(B)], dtype=np.float32)
        return th.from_numpy(out.astype(np.float64)).reshape(B, C, H, W)

    def randn_like(self, x):
        return self.draw()


def run_gaussian(kind, steps, learn_sigma=True, sigma_small=False, eta=0.0):
    diffusion = create_diffusion(str(steps), learn_sigma=learn_sigma, sigma_small=sigma_small)
    noise = Noise(SEED)
    x_t = noise.draw()
    times = []

    def model(x, t):
        times.append(int(t[0]))
        return toy(x, t, learn_sigma)

    orig = th.randn_like
    th.randn_like = noise.randn_like
    try:
        if kind == "ddpm":
            out = diffusion.p_sample_loop(model, x_t.shape, x_t, clip_denoised=False, device="cpu")
        else:
            out = diffusion.ddim_sample_loop(model, x_t.shape, x_t, clip_denoised=False, device="cpu", eta=eta)
    finally:
        th.randn_like = orig
    return {"modelTimes": times, "x0": out.flatten().tolist()}


def run_dpm(steps, skip_type="time_uniform", solver_type="dpmsolver"):
    betas = th.tensor(gd.get_named_beta_schedule("linear", 1000))
    ns = dpm.NoiseScheduleVP("discrete", betas=betas, dtype=th.float64)
    times = []

    def model(x, t_input):
        times.append(float(t_input[0]))
        return toy(x, t_input, False)

    fn = dpm.model_wrapper(model, ns, model_type="noise")
    solver = dpm.DPM_Solver(fn, ns, algorithm_type="dpmsolver++")
    x_t = Noise(SEED).draw()
    out = solver.sample(x_t, steps=steps, order=2, skip_type=skip_type, method="multistep", solver_type=solver_type)
    return {"modelTimes": times, "x0": out.flatten().tolist()}


def main():
    base = create_diffusion("")  # 1000 steps, learn_sigma
    d250 = create_diffusion("250")
    out = {
        "shape": [B, C, H, W],
        "seed": SEED,
        "spaced": {str(s): sorted(space_timesteps(1000, str(s))) for s in (250, 100, 50, 21, 20)},
        "linear_betas": gd.get_named_beta_schedule("linear", 1000)[[0, 1, 2, 998, 999]].tolist(),
        "spaced1000": {
            "betas": base.betas[[0, 1, 999]].tolist(),
            "alphas_cumprod": base.alphas_cumprod[[0, 1, 999]].tolist(),
        },
        "spaced250": {
            "betas": d250.betas[[0, 1, 2, 248, 249]].tolist(),
            "alphas_cumprod": d250.alphas_cumprod[[0, 1, 249]].tolist(),
            "posterior_log_variance_clipped": d250.posterior_log_variance_clipped[[0, 1, 2, 249]].tolist(),
            "posterior_mean_coef1": d250.posterior_mean_coef1[[0, 1, 249]].tolist(),
            "posterior_mean_coef2": d250.posterior_mean_coef2[[0, 1, 249]].tolist(),
        },
        "ddpm250": run_gaussian("ddpm", 250),
        "ddpm100": run_gaussian("ddpm", 100),
        "ddpm50_fixed_small": run_gaussian("ddpm", 50, learn_sigma=False, sigma_small=True),
        "ddpm50_fixed_large": run_gaussian("ddpm", 50, learn_sigma=False, sigma_small=False),
        "ddim50": run_gaussian("ddim", 50),
        "ddim25_eta05": run_gaussian("ddim", 25, eta=0.5),
        "dpm20": run_dpm(20),
        "dpm6": run_dpm(6),
        "dpm10_logsnr_taylor": run_dpm(10, skip_type="logSNR", solver_type="taylor"),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
