"""diffusers' DDIMScheduler as `DDIMScheduler.from_config(pipe.scheduler.config)` sets it up, in float64.

Written from diffusers' scheduling_ddim.py (its behaviour, not its code), for the golden of a
whole PixArt pipeline run:

- from_config takes the keys DDIMScheduler has and its own defaults for the rest: a PixArt
  pipeline's DPMSolverMultistepScheduler config has no `clip_sample` or `set_alpha_to_one`, so
  DDIM clips the predicted x0 to [-1, 1] and the last step moves to alpha_cumprod 1.
- betas: "linear" = linspace(beta_start, beta_end, N), "scaled_linear" = its square-root version
  squared (diffusers builds them in float32; here float64).
- set_timesteps(S), by `timestep_spacing`: "linspace" round(linspace(0, N-1, S)), "leading"
  arange(S) * (N // S) + steps_offset, "trailing" round(arange(N, 0, -N/S)) - 1; descending.
- step(eps, t, x): from t to t - N // S whatever the next timestep is (alpha_cumprod of a
  negative timestep: 1 with set_alpha_to_one, else alpha_cumprod[0]); eta 0, epsilon
  prediction.
"""
import numpy as np
import torch

DEFAULTS = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "clip_sample": True, "set_alpha_to_one": True, "steps_offset": 0,
    "prediction_type": "epsilon", "thresholding": False, "clip_sample_range": 1.0,
    "timestep_spacing": "leading", "rescale_betas_zero_snr": False,
}


class DDIMScheduler:
    def __init__(self, config):
        c = {k: config.get(k, v) for k, v in DEFAULTS.items()}
        if c["trained_betas"] is not None or c["prediction_type"] != "epsilon" or c["thresholding"] or c["rescale_betas_zero_snr"]:
            raise ValueError("this reference covers epsilon prediction over linspace betas, without thresholding")
        self.config = c
        n = c["num_train_timesteps"]
        if c["beta_schedule"] == "linear":
            betas = torch.linspace(c["beta_start"], c["beta_end"], n, dtype=torch.float64)
        elif c["beta_schedule"] == "scaled_linear":
            betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n, dtype=torch.float64) ** 2
        else:
            raise ValueError(f"beta_schedule {c['beta_schedule']} is not covered")
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if c["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.init_noise_sigma = 1.0
        self.timesteps = None

    def set_timesteps(self, steps):
        c, n = self.config, self.config["num_train_timesteps"]
        if c["timestep_spacing"] == "linspace":
            t = np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
        elif c["timestep_spacing"] == "leading":
            t = (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + c["steps_offset"]
        elif c["timestep_spacing"] == "trailing":
            t = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
        else:
            raise ValueError(f"timestep_spacing {c['timestep_spacing']} is unknown")
        self.steps = steps
        self.timesteps = [int(v) for v in t]
        return self.timesteps

    def alpha_to(self, t):
        """alpha_cumprod of the timestep a step at t moves to."""
        prev = t - self.config["num_train_timesteps"] // self.steps
        return self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod

    def step(self, eps, t, x):
        a, a_prev = self.alphas_cumprod[t], self.alpha_to(t)
        x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
        if self.config["clip_sample"]:
            r = self.config["clip_sample_range"]
            x0 = x0.clamp(-r, r)
        return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
