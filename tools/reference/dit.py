"""DiT reference (PyTorch), written from the published architecture, for golden fixtures.

Two conventions with the same weights:
  "original"  facebookresearch/DiT: timestep freqs exp(-ln(1e4) k / 128), both block norms eps 1e-6.
  "diffusers" DiTTransformer2DModel: timestep freqs exp(-ln(1e4) k / 127), pre-MLP norm (norm2) eps 1e-5.
Module/parameter names follow the original checkpoint; `to_diffusers` / `from_diffusers`
convert state dicts to and from diffusers' names.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

FREQ_DIM = 256  # width of the timestep sinusoid


@dataclass
class DiTConfig:
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int
    input_size: int
    in_channels: int
    num_classes: int
    learn_sigma: bool = True

    @property
    def out_channels(self):
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def grid(self):
        return self.input_size // self.patch_size

    @property
    def tokens(self):
        return self.grid ** 2


# ---------------------------------------------------------------- math helpers

def timestep_sinusoid(t, dim=FREQ_DIM, convention="original", max_period=10000.0):
    """[N] -> [N, dim], [cos, sin] halves; freq_k = exp(-ln(max_period) * k / denom)."""
    half = dim // 2
    denom = half if convention == "original" else half - 1
    k = torch.arange(half, dtype=torch.float64, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / denom).to(t.dtype)
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_1d(dim, pos):
    """[M] positions -> [M, dim]: [sin, cos] halves, omega_k = 1 / 10000^(k / (dim/2))."""
    k = torch.arange(dim // 2, dtype=torch.float64)
    omega = 1.0 / 10000.0 ** (k / (dim / 2))
    out = pos.to(torch.float64)[:, None] * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def pos_embed_2d(dim, grid):
    """[grid*grid, dim]; token n = row*grid + col; first half encodes the column, second the row."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], dim=1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def layer_norm(x, eps):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def unpatchify(x, p, c):
    """[N, T, p*p*c] ordered (p, q, c) -> [N, c, h*p, w*p]."""
    n, t, _ = x.shape
    h = w = int(round(t ** 0.5))
    x = x.reshape(n, h, w, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, c, h * p, w * p)


# ---------------------------------------------------------------- modules (original names)

class TimestepEmbedder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t, convention):
        return self.mlp(timestep_sinusoid(t, FREQ_DIM, convention).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, d):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, d)  # row num_classes = null label

    def forward(self, y):
        return self.embedding_table(y)


class PatchEmbed(nn.Module):
    def __init__(self, p, cin, d):
        super().__init__()
        self.proj = nn.Conv2d(cin, d, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, T, D], token = row*w + col


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        n, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        return self.proj((w @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads)
        self.mlp = Mlp(d)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def mods(self, c):
        """shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, each [N, D]."""
        return self.adaLN_modulation(c).chunk(6, dim=1)

    def forward(self, x, c, norm2_eps):
        """Returns (x_out, A, M) with A, M the ungated attention / MLP outputs."""
        sh1, sc1, g1, sh2, sc2, g2 = self.mods(c)
        a = self.attn(modulate(layer_norm(x, 1e-6), sh1, sc1))
        x = x + g1[:, None] * a
        m = self.mlp(modulate(layer_norm(x, norm2_eps), sh2, sc2))
        x = x + g2[:, None] * m
        return x, a, m

    def reuse(self, x, c, a, m):
        """FORA reuse: fresh gates, cached ungated outputs."""
        _, _, g1, _, _, g2 = self.mods(c)
        return x + g1[:, None] * a + g2[:, None] * m


class FinalLayer(nn.Module):
    def __init__(self, d, p, cout):
        super().__init__()
        self.linear = nn.Linear(d, p * p * cout)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(layer_norm(x, 1e-6), shift, scale))


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig, convention="original"):
        super().__init__()
        assert convention in ("original", "diffusers")
        self.cfg, self.convention = cfg, convention
        d = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = LabelEmbedder(cfg.num_classes, d)
        # recomputed, never loaded: the golden math uses the exact float64 values
        self.register_buffer("pos_embed", pos_embed_2d(d, cfg.grid)[None], persistent=False)
        self.blocks = nn.ModuleList([DiTBlock(d, cfg.num_heads) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(d, cfg.patch_size, cfg.out_channels)

    @property
    def norm2_eps(self):
        return 1e-6 if self.convention == "original" else 1e-5

    def cond(self, t, y):
        """c = t_emb(t) + y_emb(y), [N, D]; t is [N] or [1] (broadcast)."""
        t = t.to(self.pos_embed.dtype).expand(y.shape[0])
        return self.t_embedder(t, self.convention) + self.y_embedder(y)

    def tokens(self, x):
        """x0 = patch_embed(x) + pos, [N, T, D]."""
        return self.x_embedder(x) + self.pos_embed

    def final(self, x, c):
        return unpatchify(self.final_layer(x, c), self.cfg.patch_size, self.cfg.out_channels)

    def forward_full(self, x, t, y):
        """Full step. Returns model_out [N, 2C, H, W] and intermediates."""
        c = self.cond(t, y)
        x0 = h = self.tokens(x)
        attn, mlp = [], []
        for blk in self.blocks:
            h, a, m = blk(h, c, self.norm2_eps)
            attn.append(a)
            mlp.append(m)
        return self.final(h, c), {"c": c, "tokens": x0, "attn": attn, "mlp": mlp}

    def forward_reuse(self, x, t, y, attn, mlp):
        """Literal FORA reuse step: per block x += gate_msa(c) A_k + gate_mlp(c) M_k."""
        c = self.cond(t, y)
        h = self.tokens(x)
        for blk, a, m in zip(self.blocks, attn, mlp):
            h = blk.reuse(h, c, a, m)
        return self.final(h, c)

    def residual(self, c, attn, mlp):
        """R = sum_k gate_msa_k(c) A_k + gate_mlp_k(c) M_k, [N, T, D]."""
        r = 0
        for blk, a, m in zip(self.blocks, attn, mlp):
            _, _, g1, _, _, g2 = blk.mods(c)
            r = r + g1[:, None] * a + g2[:, None] * m
        return r


# ---------------------------------------------------------------- classifier-free guidance

def cfg_batch(x, y, num_classes):
    """[x; x] with labels [y; null]."""
    return torch.cat([x, x]), torch.cat([y, torch.full_like(y, num_classes)])


def guide(model_out, in_channels, scale, mode="ref"):
    """Guided output for the B conditional samples: cond + mask*(s-1)*(cond-uncond) on eps channels.

    mode "ref": channels 0..min(C,3)-1 (DiT reference guides [:3]); "all": all C eps channels.
    Variance channels (C..2C-1) come from the cond half unguided.
    """
    b = model_out.shape[0] // 2
    cond, uncond = model_out[:b], model_out[b:]
    n = min(in_channels, 3) if mode == "ref" else in_channels
    mask = torch.zeros(model_out.shape[1], dtype=model_out.dtype)
    mask[:n] = 1
    return cond + mask[None, :, None, None] * (scale - 1) * (cond - uncond)


# ---------------------------------------------------------------- diffusers names

def to_diffusers(sd, depth):
    """Original state dict (no pos_embed needed) -> DiTTransformer2DModel state dict."""
    out = {
        "pos_embed.proj.weight": sd["x_embedder.proj.weight"],
        "pos_embed.proj.bias": sd["x_embedder.proj.bias"],
        "proj_out_1.weight": sd["final_layer.adaLN_modulation.1.weight"],
        "proj_out_1.bias": sd["final_layer.adaLN_modulation.1.bias"],
        "proj_out_2.weight": sd["final_layer.linear.weight"],
        "proj_out_2.bias": sd["final_layer.linear.bias"],
    }
    for i in range(depth):
        o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
        emb = b + "norm1.emb."
        for wb in ("weight", "bias"):
            out[emb + f"timestep_embedder.linear_1.{wb}"] = sd[f"t_embedder.mlp.0.{wb}"]
            out[emb + f"timestep_embedder.linear_2.{wb}"] = sd[f"t_embedder.mlp.2.{wb}"]
            out[b + f"norm1.linear.{wb}"] = sd[o + f"adaLN_modulation.1.{wb}"]
            q, k, v = sd[o + f"attn.qkv.{wb}"].chunk(3, dim=0)
            out[b + f"attn1.to_q.{wb}"], out[b + f"attn1.to_k.{wb}"], out[b + f"attn1.to_v.{wb}"] = q, k, v
            out[b + f"attn1.to_out.0.{wb}"] = sd[o + f"attn.proj.{wb}"]
            out[b + f"ff.net.0.proj.{wb}"] = sd[o + f"mlp.fc1.{wb}"]
            out[b + f"ff.net.2.{wb}"] = sd[o + f"mlp.fc2.{wb}"]
        out[emb + "class_embedder.embedding_table.weight"] = sd["y_embedder.embedding_table.weight"]
    return {k: v.clone() for k, v in out.items()}


def from_diffusers(dd, depth):
    """Inverse of to_diffusers; checks the per-block embedder copies agree."""
    inv = {}
    for i in range(depth):
        emb = f"transformer_blocks.{i}.norm1.emb."
        for a, b in (("timestep_embedder.linear_1", "t_embedder.mlp.0"),
                     ("timestep_embedder.linear_2", "t_embedder.mlp.2")):
            for wb in ("weight", "bias"):
                assert torch.equal(dd[emb + f"{a}.{wb}"], dd[f"transformer_blocks.0.norm1.emb.{a}.{wb}"])
        assert torch.equal(dd[emb + "class_embedder.embedding_table.weight"],
                           dd["transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"])
    emb = "transformer_blocks.0.norm1.emb."
    sd = {"x_embedder.proj.weight": dd["pos_embed.proj.weight"], "x_embedder.proj.bias": dd["pos_embed.proj.bias"],
          "final_layer.adaLN_modulation.1.weight": dd["proj_out_1.weight"],
          "final_layer.adaLN_modulation.1.bias": dd["proj_out_1.bias"],
          "final_layer.linear.weight": dd["proj_out_2.weight"], "final_layer.linear.bias": dd["proj_out_2.bias"],
          "y_embedder.embedding_table.weight": dd[emb + "class_embedder.embedding_table.weight"]}
    for wb in ("weight", "bias"):
        sd[f"t_embedder.mlp.0.{wb}"] = dd[emb + f"timestep_embedder.linear_1.{wb}"]
        sd[f"t_embedder.mlp.2.{wb}"] = dd[emb + f"timestep_embedder.linear_2.{wb}"]
        for i in range(depth):
            o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
            sd[o + f"adaLN_modulation.1.{wb}"] = dd[b + f"norm1.linear.{wb}"]
            sd[o + f"attn.qkv.{wb}"] = torch.cat([dd[b + f"attn1.to_{n}.{wb}"] for n in "qkv"], dim=0)
            sd[o + f"attn.proj.{wb}"] = dd[b + f"attn1.to_out.0.{wb}"]
            sd[o + f"mlp.fc1.{wb}"] = dd[b + f"ff.net.0.proj.{wb}"]
            sd[o + f"mlp.fc2.{wb}"] = dd[b + f"ff.net.2.{wb}"]
    assert len(dd) == len(to_diffusers(sd, depth)), "unexpected diffusers keys"
    return sd


def diffusers_config(cfg: DiTConfig):
    return {
        "_class_name": "DiTTransformer2DModel",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": cfg.hidden_size // cfg.num_heads,
        "dropout": 0.0,
        "in_channels": cfg.in_channels,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-5,
        "norm_num_groups": 32,
        "norm_type": "ada_norm_zero",
        "num_attention_heads": cfg.num_heads,
        "num_embeds_ada_norm": cfg.num_classes,
        "num_layers": cfg.depth,
        "out_channels": cfg.out_channels,
        "patch_size": cfg.patch_size,
        "sample_size": cfg.input_size,
        "upcast_attention": False,
    }
