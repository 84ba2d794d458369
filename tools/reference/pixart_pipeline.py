"""A whole diffusers PixArt pipeline run in float64: prompt -> T5 -> DDIM loop with guidance -> final latent.

What PixArtAlphaPipeline / PixArtSigmaPipeline do with `scheduler = DDIMScheduler.from_config(...)`
(ddim_scheduler.py), `guidance_scale`, `negative_prompt = ""`, a given initial latent and
`output_type = "latent"`, written from their behaviour:

- the prompt, lower-cased and stripped (what caption cleaning leaves of the prompts used here;
  the fora test checks that its cleaner agrees), tokenized to the family's caption length
  (PixArtSigmaPipeline 300, otherwise 120) with `</s>` and padding, and the T5 encoder run
  on the padded ids with the attention mask; the negative prompt "" the same way. The
  transformer's cross-attention masks the padding, which is attention over the real tokens
  alone, as pixart.py computes it.
- latents = x_T * init_noise_sigma; per timestep t (descending) the batch [uncond; cond] at t,
  noise = uncond + scale (cond - uncond) over all output channels, the learned-sigma half
  dropped, then scheduler.step.
- FORA (static interval N, the paper's literal per-layer cache, cross-attention cached too):
  with i = S-1-k the step index of the k-th call, a step is full when i == S-1 or i % N == 0;
  a full step keeps every block's attention, cross-attention and MLP outputs (ungated), the
  others reuse them under the current step's gates (pixart.py's forward_reuse).
"""
import json
import os

import numpy as np
import torch

import st
from ddim_scheduler import DDIMScheduler
from pixart import PixArt, PixArtConfig, from_diffusers, to_diffusers
from t5 import T5Config, T5Encoder

EOS, PAD = 1, 0


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_tensors(folder):
    """Every tensor of the folder's .safetensors files (shards included), as float64 torch tensors."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            out.update({k: torch.from_numpy(v.astype(np.float64)) for k, v in st.load(os.path.join(folder, name))[0].items()})
    return out


def load_t5(folder):
    c = read_json(os.path.join(folder, "config.json"))
    t5 = T5Encoder(T5Config(vocab_size=c["vocab_size"], d_model=c["d_model"], d_kv=c["d_kv"], d_ff=c["d_ff"],
                            num_layers=c["num_layers"], num_heads=c["num_heads"],
                            relative_attention_num_buckets=c["relative_attention_num_buckets"],
                            relative_attention_max_distance=c["relative_attention_max_distance"],
                            layer_norm_epsilon=c["layer_norm_epsilon"])).double()
    weights = load_tensors(folder)
    with torch.no_grad():
        params = t5.hf_state_dict()  # views of the parameters under transformers' names
        if set(params) != set(weights):
            raise ValueError(f"{folder}: tensor names differ from a T5EncoderModel's")
        for name, p in params.items():
            p.copy_(weights[name])
    return t5


def load_transformer(folder, max_tokens, vae_scale):
    c = read_json(os.path.join(folder, "config.json"))
    micro = c.get("use_additional_conditions")
    cfg = PixArtConfig(depth=c["num_layers"], hidden_size=c["num_attention_heads"] * c["attention_head_dim"],
                       num_heads=c["num_attention_heads"], patch_size=c["patch_size"], input_size=c["sample_size"],
                       in_channels=c["in_channels"], caption_channels=c["caption_channels"],
                       learn_sigma=c["out_channels"] == 2 * c["in_channels"], max_tokens=max_tokens,
                       interpolation_scale=c.get("interpolation_scale"),
                       micro_conditions=c["sample_size"] == 128 if micro is None else micro, vae_scale=vae_scale)
    model = PixArt(cfg).double()
    dsd = load_tensors(folder)
    sd = from_diffusers(dsd, cfg.depth)
    back = to_diffusers(sd, cfg.depth)
    if set(back) != set(dsd) or any(not torch.equal(back[k], dsd[k]) for k in dsd):
        raise ValueError(f"{folder}: weights do not map back to the same diffusers names")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or missing != ["y_embedder.y_embedding"]:  # diffusers weights carry no null caption
        raise ValueError(f"{folder}: missing {missing}, unexpected {unexpected}")
    return model


class Pipeline:
    """A diffusers PixArt pipeline folder, loaded for float64 sampling with DDIM."""

    def __init__(self, root, sp):
        index = read_json(os.path.join(root, "model_index.json"))
        self.max_tokens = 300 if index["_class_name"] == "PixArtSigmaPipeline" else 120
        vae = read_json(os.path.join(root, "vae", "config.json"))
        self.vae_scale = 2 ** (len(vae["block_out_channels"]) - 1)
        self.sp = sp
        self.t5 = load_t5(os.path.join(root, "text_encoder"))
        self.model = load_transformer(os.path.join(root, "transformer"), self.max_tokens, self.vae_scale)
        self.scheduler = DDIMScheduler(read_json(os.path.join(root, "scheduler", "scheduler_config.json")))

    def token_ids(self, prompt):
        """The real tokens of the tokenizer call: pieces cut to max_tokens - 1, then </s>."""
        return self.sp.encode(prompt.lower().strip())[: self.max_tokens - 1] + [EOS]

    def encode(self, prompt):
        """Caption features of the real tokens [n, d_model], from the padded, masked T5 run."""
        ids = self.token_ids(prompt)
        n = len(ids)
        padded = torch.tensor([ids + [PAD] * (self.max_tokens - n)])
        mask = torch.tensor([[1] * n + [0] * (self.max_tokens - n)])
        with torch.no_grad():
            return self.t5(padded, mask)[0, :n]

    def sample(self, prompt, x_t, steps, guidance_scale, interval):
        """Final latent [1, C, H, W] (float64) of a DDIM run from x_t, with FORA at `interval` (1: no caching)."""
        feats = [self.encode(""), self.encode(prompt)]  # [uncond; cond]
        timesteps = self.scheduler.set_timesteps(steps)
        x = x_t.double() * self.scheduler.init_noise_sigma
        C, cache = self.model.cfg.in_channels, None
        with torch.no_grad():
            for k, t in enumerate(timesteps):
                i = steps - 1 - k
                xx, tt = torch.cat([x, x]), torch.tensor([float(t)], dtype=torch.float64)
                if i == steps - 1 or i % interval == 0:
                    out, inter = self.model.forward_full(xx, tt, feats)
                    cache = (inter["attn"], inter["cross"], inter["mlp"])
                else:
                    out = self.model.forward_reuse(xx, tt, feats, *cache, cache_cross=True)
                uncond, cond = out.chunk(2)
                noise = uncond + guidance_scale * (cond - uncond)
                x = self.scheduler.step(noise[:, :C], t, x)
        return x
