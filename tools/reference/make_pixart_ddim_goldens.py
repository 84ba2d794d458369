"""Writes fixtures/pixart-ddim/: goldens of whole PixArt pipeline runs with DDIM, guidance and FORA.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/reference/make_pixart_ddim_goldens.py

Run after make_pixart_goldens.py (it reads fixtures/pixart-tiny and fixtures/pixart-family and
writes nothing else). Per family transformer of fixtures/pixart-family, a pipeline folder is
assembled as tests/cli/pixart_ddim_test.ts assembles it: pixart-tiny's text encoder,
tokenizer and VAE, the family's transformer, the pipeline class in model_index.json and the
scheduler config below. pixart_pipeline.py samples it in float64 from a fixed x_T: DDIM,
guidance 4.5, FORA N=2 with cross-attention cached (`latent`), and without caching
(`latent_n1`).

- alpha-512:     PixArt's published scheduler config (DPM-Solver++, "linspace", no clip_sample
                 or set_alpha_to_one: DDIM clips x0 and ends at alpha_cumprod 1), 8 steps.
- alpha-1024-ms: micro-conditions at a 6 x 10 latent (12 x 20 px through the tiny VAE's factor
                 2); pixart-tiny's own config with "leading" spacing, steps_offset 1,
                 set_alpha_to_one false and clip_sample false, 9 steps.
- sigma:         PixArtSigmaPipeline (300-token captions) with a prompt of more than 120
                 tokens, the published config, 10 steps.

Each <name>.safetensors holds x_t [1,4,H,W], latent and latent_n1 (F32 of the float64 result),
timesteps (the scheduler's, in call order) and ids (the prompt's token ids); its metadata the
prompt, steps, guidance scale, interval, pipeline class and scheduler_config.json's text.
"""
import json
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from make_goldens import gen  # noqa: E402
from pixart_pipeline import Pipeline, read_json  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TINY = os.path.join(ROOT, "fixtures", "pixart-tiny", "diffusers")
FAMILY = os.path.join(ROOT, "fixtures", "pixart-family")
OUT = os.path.join(ROOT, "fixtures", "pixart-ddim")
GUIDANCE, INTERVAL = 4.5, 2

# PixArt-XL-2-1024-MS's and PixArt-Sigma-XL-2-1024-MS's scheduler/scheduler_config.json (the same keys and values)
PUBLISHED = {
    "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.22.0.dev0", "algorithm_type": "dpmsolver++",
    "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001, "dynamic_thresholding_ratio": 0.995,
    "euler_at_final": False, "lambda_min_clipped": float("-inf"), "lower_order_final": True, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "sample_max_value": 1.0, "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0,
    "thresholding": False, "timestep_spacing": "linspace", "trained_betas": None, "use_karras_sigmas": False,
    "use_lu_lambdas": False, "variance_type": None,
}
TINY_SCHEDULER = read_json(os.path.join(TINY, "scheduler", "scheduler_config.json"))
LONG_PROMPT = " ".join(["a red fox sitting in a snowy forest at dawn"] * 6)

# (family transformer, pipeline class, scheduler config, latent height x width, steps, prompt)
RUNS = [
    ("alpha-512", "PixArtAlphaPipeline", PUBLISHED, (8, 8), 8, "a small cactus with a happy face in the sahara desert"),
    ("alpha-1024-ms", "PixArtAlphaPipeline",
     {**TINY_SCHEDULER, "timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False},
     (6, 10), 9, "an astronaut riding a green horse on the moon"),
    ("sigma", "PixArtSigmaPipeline", PUBLISHED, (8, 8), 10, LONG_PROMPT),
]


def assemble(work, name, pipeline_class, scheduler_text):
    """The pipeline folder the test builds: pixart-tiny with the family's transformer, class and scheduler."""
    root = os.path.join(work, name)
    shutil.copytree(TINY, root)
    shutil.rmtree(os.path.join(root, "transformer"))
    shutil.copytree(os.path.join(FAMILY, name, "transformer"), os.path.join(root, "transformer"))
    index = read_json(os.path.join(root, "model_index.json"))
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump({**index, "_class_name": pipeline_class}, f, indent=2)
    with open(os.path.join(root, "scheduler", "scheduler_config.json"), "w") as f:
        f.write(scheduler_text)
    return root


def main():
    import sentencepiece as spm
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(TINY, "tokenizer", "spiece.model"))
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for n, (name, pipeline_class, scheduler, hw, steps, prompt) in enumerate(RUNS):
            scheduler_text = json.dumps(scheduler, indent=2)  # -inf as -Infinity, as Python wrote the published file
            pipe = Pipeline(assemble(work, name, pipeline_class, scheduler_text), sp)
            ids = pipe.token_ids(prompt)
            if name == "sigma" and not 120 < len(ids) < 300:
                raise ValueError(f"the Sigma prompt should need more than 120 tokens and fit in 300 ({len(ids)})")
            x_t = torch.randn(1, pipe.model.cfg.in_channels, *hw, generator=gen(40 + n))
            g = {
                "x_t": x_t,
                "latent": pipe.sample(prompt, x_t, steps, GUIDANCE, INTERVAL),
                "latent_n1": pipe.sample(prompt, x_t, steps, GUIDANCE, 1),
                "timesteps": torch.tensor(pipe.scheduler.timesteps, dtype=torch.float64),
                "ids": torch.tensor(ids, dtype=torch.float64),
            }
            st.save(os.path.join(OUT, f"{name}.safetensors"), {k: v.to(torch.float32).contiguous() for k, v in g.items()}, {
                "generator": "tools/reference/make_pixart_ddim_goldens.py", "prompt": prompt, "steps": steps,
                "guidance_scale": GUIDANCE, "interval": INTERVAL, "pipeline_class": pipeline_class,
                "scheduler_config": scheduler_text})
            d = (g["latent"] - g["latent_n1"]).abs().max() / g["latent_n1"].abs().max()
            print(f"{name}: {len(ids)} tokens, timesteps {pipe.scheduler.timesteps}, N=2 vs N=1 relative {d:.3g}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total / 1e3:.1f} kB)")


if __name__ == "__main__":
    main()
