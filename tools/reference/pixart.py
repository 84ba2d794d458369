"""PixArt-alpha / PixArt-Sigma transformer reference (PyTorch), written from the published architecture, for goldens.

Module and parameter names follow the original PixArt-alpha checkpoints (`blocks.{i}.attn.qkv`,
`blocks.{i}.cross_attn.q_linear/kv_linear/proj`, `t_block.1`, `y_embedder.y_proj.fc1/fc2`,
`y_embedder.y_embedding`, `final_layer.scale_shift_table`); `to_diffusers` maps them to
diffusers' PixArtTransformer2DModel names. Both layouts compute the same function (timestep
frequencies exp(-ln(1e4) k/128) and LayerNorm eps 1e-6 in both).

Family settings: `interpolation_scale` and the base grid (sample size / patch) scale the 2D sin-cos
positions as diffusers' get_2d_sincos_pos_embed does, for any latent height and width; with
`micro_conditions` (PixArt-alpha 1024-MS) the pixel height, width (`csize_embedder`) and aspect
ratio (`ar_embedder`), each a 256-dim timestep-style sinusoid through its own MLP to D/3, are
added to the timestep embedding (diffusers: adaln_single.emb.resolution_embedder /
aspect_ratio_embedder); pixel size = latent size x `vae_scale`, as the pipeline passes it.

Captions are lists of per-sample token features of any length (no padding, no mask): masked
attention over padded captions equals attention over the real tokens alone.

FORA (per block k): A_k self-attention output after proj, X_k cross-attention output (ungated),
M_k MLP output after fc2, all before gating. Gates depend on the timestep only (adaLN-single).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit import sincos_1d, timestep_sinusoid

FREQ_DIM = 256


@dataclass
class PixArtConfig:
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int
    input_size: int
    in_channels: int
    caption_channels: int
    learn_sigma: bool = True
    max_tokens: int = 120
    interpolation_scale: float = None  # None: diffusers' default, max(input_size // 64, 1)
    micro_conditions: bool = False
    vae_scale: int = 8

    @property
    def pe_scale(self):
        return self.interpolation_scale if self.interpolation_scale is not None else max(self.input_size // 64, 1)

    @property
    def out_channels(self):
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def grid(self):
        return self.input_size // self.patch_size


def pos_embed_2d(dim, rows, cols, base_size, interpolation_scale):
    """[rows*cols, dim]; token n = row*cols + col; first half encodes the column, second the row.
    Positions are scaled to the trained grid: col * (base_size / cols) / interpolation_scale."""
    r = torch.arange(rows, dtype=torch.float64) / (rows / base_size) / interpolation_scale
    c = torch.arange(cols, dtype=torch.float64) / (cols / base_size) / interpolation_scale
    rr, cc = torch.meshgrid(r, c, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cc.reshape(-1)), sincos_1d(dim // 2, rr.reshape(-1))], dim=1)


def unpatchify(x, rows, cols, p, c):
    """[N, rows*cols, p*p*c] ordered (p, q, c) -> [N, c, rows*p, cols*p]."""
    n = x.shape[0]
    x = x.reshape(n, rows, cols, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, c, rows * p, cols * p)


def layer_norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def t2i_modulate(x, shift, scale):
    return x * (1 + scale) + shift


def attention(q, k, v, heads):
    """q [Tq, D], k/v [Tk, D] -> [Tq, D]."""
    tq, d = q.shape
    hd = d // heads
    sp = lambda t: t.reshape(-1, heads, hd).transpose(0, 1)
    w = torch.softmax(sp(q) @ sp(k).transpose(-1, -2) / math.sqrt(hd), dim=-1)
    return (w @ sp(v)).transpose(0, 1).reshape(tq, d)


class Mlp(nn.Module):
    def __init__(self, din, dhid, dout):
        super().__init__()
        self.fc1 = nn.Linear(din, dhid)
        self.fc2 = nn.Linear(dhid, dout)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(torch.stack([attention(q[b], k[b], v[b], self.heads) for b in range(x.shape[0])]))


class CrossAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(d, d)
        self.kv_linear = nn.Linear(d, 2 * d)  # rows: K then V
        self.proj = nn.Linear(d, d)

    def kv(self, y):
        return self.kv_linear(y).chunk(2, dim=-1)

    def forward(self, x, ys):
        """x [B, T, D]; ys: B caption token tensors [n_b, D] (already projected)."""
        q = self.q_linear(x)
        outs = []
        for b, y in enumerate(ys):
            k, v = self.kv(y)
            outs.append(attention(q[b], k, v, self.heads))
        return self.proj(torch.stack(outs))


class PixArtBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = SelfAttention(d, heads)
        self.cross_attn = CrossAttention(d, heads)
        self.mlp = Mlp(d, 4 * d, d)
        self.scale_shift_table = nn.Parameter(torch.randn(6, d) / d ** 0.5)

    def mods(self, t0):
        """t0 [N, 6D] -> shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, each [N, 1, D]."""
        return (self.scale_shift_table[None] + t0.reshape(t0.shape[0], 6, -1)).chunk(6, dim=1)

    def forward(self, x, ys, t0):
        sh1, sc1, g1, sh2, sc2, g2 = self.mods(t0)
        a = self.attn(t2i_modulate(layer_norm(x), sh1, sc1))
        x = x + g1 * a
        xc = self.cross_attn(x, ys)
        x = x + xc
        m = self.mlp(t2i_modulate(layer_norm(x), sh2, sc2))
        return x + g2 * m, a, xc, m

    def reuse(self, x, ys, t0, a, xc, m):
        """FORA reuse: fresh gates; the cross-attention from the cache (xc given) or recomputed (xc None)."""
        _, _, g1, _, _, g2 = self.mods(t0)
        x = x + g1 * a
        x = x + (xc if xc is not None else self.cross_attn(x, ys))
        return x + g2 * m


class PixArt(nn.Module):
    def __init__(self, cfg: PixArtConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(cfg.in_channels, d, cfg.patch_size, cfg.patch_size)
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.y_embedder = nn.Module()
        self.y_embedder.y_proj = Mlp(cfg.caption_channels, d, d)
        self.y_embedder.y_embedding = nn.Parameter(torch.randn(cfg.max_tokens, cfg.caption_channels) / cfg.caption_channels ** 0.5)
        if cfg.micro_conditions:
            for name in ("csize_embedder", "ar_embedder"):
                m = nn.Module()
                m.mlp = nn.Sequential(nn.Linear(FREQ_DIM, d // 3), nn.SiLU(), nn.Linear(d // 3, d // 3))
                setattr(self, name, m)
        self.hw = (cfg.input_size, cfg.input_size)  # latent height, width of the current call
        self.blocks = nn.ModuleList([PixArtBlock(d, cfg.num_heads) for _ in range(cfg.depth)])
        self.final_layer = nn.Module()
        self.final_layer.linear = nn.Linear(d, cfg.patch_size ** 2 * cfg.out_channels)
        self.final_layer.scale_shift_table = nn.Parameter(torch.randn(2, d) / d ** 0.5)

    # ---- pieces
    def t_emb(self, t, n):
        """t [1] -> conditioning embedding [n, D] (the same for every sample): timestep, plus micro-conditions."""
        dtype = self.t_block[1].weight.dtype
        e = self.t_embedder.mlp(timestep_sinusoid(t.to(dtype).expand(n), FREQ_DIM, "original"))
        if self.cfg.micro_conditions:
            h, w = (v * self.cfg.vae_scale for v in self.hw)
            size = lambda m, v: m.mlp(timestep_sinusoid(torch.tensor(v, dtype=dtype), FREQ_DIM, "original"))
            csize = size(self.csize_embedder, [float(h), float(w)]).reshape(1, -1)  # [1, 2D/3]: height, width
            ar = size(self.ar_embedder, [h / w])                                     # [1, D/3]
            e = e + torch.cat([csize, ar], dim=1)
        return e

    def captions(self, feats):
        """Caption features (T5 output) per sample -> projected caption tokens per sample."""
        return [self.y_embedder.y_proj(f) for f in feats]

    def null_caption(self, n):
        """The learned null caption, truncated to n tokens (the reference reuses the prompt's mask)."""
        return self.y_embedder.y_embedding[:n]

    def tokens(self, x):
        """Patch embedding plus positions; also fixes the latent size the micro-conditions see."""
        self.hw = tuple(x.shape[-2:])
        p = self.cfg.patch_size
        pos = pos_embed_2d(self.cfg.hidden_size, x.shape[-2] // p, x.shape[-1] // p, self.cfg.grid, self.cfg.pe_scale)
        return self.x_embedder.proj(x).flatten(2).transpose(1, 2) + pos.to(x.dtype)[None]

    def final(self, h, te):
        shift, scale = (self.final_layer.scale_shift_table[None] + te[:, None]).chunk(2, dim=1)
        y = self.final_layer.linear(t2i_modulate(layer_norm(h), shift, scale))
        p = self.cfg.patch_size
        return unpatchify(y, self.hw[0] // p, self.hw[1] // p, p, self.cfg.out_channels)

    # ---- steps
    def forward_full(self, x, t, feats):
        n = x.shape[0]
        x0 = h = self.tokens(x)
        te = self.t_emb(t, n)
        t0 = self.t_block(te)
        ys = self.captions(feats)
        attn, cross, mlp = [], [], []
        for blk in self.blocks:
            h, a, xc, m = blk(h, ys, t0)
            attn.append(a), cross.append(xc), mlp.append(m)
        return self.final(h, te), {"t0": t0, "tokens": x0, "attn": attn, "cross": cross, "mlp": mlp, "ys": ys}

    def forward_reuse(self, x, t, feats, attn, cross, mlp, cache_cross=True):
        n = x.shape[0]
        h = self.tokens(x)
        te = self.t_emb(t, n)
        t0 = self.t_block(te)
        ys = self.captions(feats)
        for k, blk in enumerate(self.blocks):
            h = blk.reuse(h, ys, t0, attn[k], cross[k] if cache_cross else None, mlp[k])
        return self.final(h, te)

    def residual(self, t, n, attn, cross, mlp):
        """R = sum_k gate_msa_k(t) A_k + X_k + gate_mlp_k(t) M_k."""
        t0 = self.t_block(self.t_emb(t, n))
        r = 0
        for blk, a, xc, m in zip(self.blocks, attn, cross, mlp):
            _, _, g1, _, _, g2 = blk.mods(t0)
            r = r + g1 * a + xc + g2 * m
        return r


def guide(model_out, in_channels, scale, mode="all"):
    """[cond; uncond] raw output -> B guided outputs; eps channels :C ("all") or :min(C,3) ("ref")."""
    b = model_out.shape[0] // 2
    cond, uncond = model_out[:b], model_out[b:]
    n = in_channels if mode == "all" else min(in_channels, 3)
    mask = torch.zeros(model_out.shape[1], dtype=model_out.dtype)
    mask[:n] = 1
    return cond + mask[None, :, None, None] * (scale - 1) * (cond - uncond)


# ---------------------------------------------------------------- diffusers names

def to_diffusers(sd, depth):
    """Original state dict -> PixArtTransformer2DModel state dict (the null caption has no diffusers name)."""
    out = {
        "pos_embed.proj.weight": sd["x_embedder.proj.weight"], "pos_embed.proj.bias": sd["x_embedder.proj.bias"],
        "scale_shift_table": sd["final_layer.scale_shift_table"],
        "proj_out.weight": sd["final_layer.linear.weight"], "proj_out.bias": sd["final_layer.linear.bias"],
    }
    for wb in ("weight", "bias"):
        out[f"adaln_single.emb.timestep_embedder.linear_1.{wb}"] = sd[f"t_embedder.mlp.0.{wb}"]
        out[f"adaln_single.emb.timestep_embedder.linear_2.{wb}"] = sd[f"t_embedder.mlp.2.{wb}"]
        out[f"adaln_single.linear.{wb}"] = sd[f"t_block.1.{wb}"]
        out[f"caption_projection.linear_1.{wb}"] = sd[f"y_embedder.y_proj.fc1.{wb}"]
        out[f"caption_projection.linear_2.{wb}"] = sd[f"y_embedder.y_proj.fc2.{wb}"]
        for orig, diff in (("csize_embedder", "resolution_embedder"), ("ar_embedder", "aspect_ratio_embedder")):
            for o, dn in (("0", "1"), ("2", "2")):
                if f"{orig}.mlp.{o}.{wb}" in sd:
                    out[f"adaln_single.emb.{diff}.linear_{dn}.{wb}"] = sd[f"{orig}.mlp.{o}.{wb}"]
    for i in range(depth):
        o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
        out[b + "scale_shift_table"] = sd[o + "scale_shift_table"]
        for wb in ("weight", "bias"):
            q, k, v = sd[o + f"attn.qkv.{wb}"].chunk(3, dim=0)
            out[b + f"attn1.to_q.{wb}"], out[b + f"attn1.to_k.{wb}"], out[b + f"attn1.to_v.{wb}"] = q, k, v
            out[b + f"attn1.to_out.0.{wb}"] = sd[o + f"attn.proj.{wb}"]
            out[b + f"attn2.to_q.{wb}"] = sd[o + f"cross_attn.q_linear.{wb}"]
            k2, v2 = sd[o + f"cross_attn.kv_linear.{wb}"].chunk(2, dim=0)
            out[b + f"attn2.to_k.{wb}"], out[b + f"attn2.to_v.{wb}"] = k2, v2
            out[b + f"attn2.to_out.0.{wb}"] = sd[o + f"cross_attn.proj.{wb}"]
            out[b + f"ff.net.0.proj.{wb}"] = sd[o + f"mlp.fc1.{wb}"]
            out[b + f"ff.net.2.{wb}"] = sd[o + f"mlp.fc2.{wb}"]
    return {k: v.clone() for k, v in out.items()}


def from_diffusers(dsd, depth):
    """PixArtTransformer2DModel state dict -> original names (to_diffusers inverted; no null caption)."""
    renames = {
        "x_embedder.proj": "pos_embed.proj", "final_layer.linear": "proj_out",
        "t_embedder.mlp.0": "adaln_single.emb.timestep_embedder.linear_1",
        "t_embedder.mlp.2": "adaln_single.emb.timestep_embedder.linear_2", "t_block.1": "adaln_single.linear",
        "y_embedder.y_proj.fc1": "caption_projection.linear_1", "y_embedder.y_proj.fc2": "caption_projection.linear_2",
        "csize_embedder.mlp.0": "adaln_single.emb.resolution_embedder.linear_1",
        "csize_embedder.mlp.2": "adaln_single.emb.resolution_embedder.linear_2",
        "ar_embedder.mlp.0": "adaln_single.emb.aspect_ratio_embedder.linear_1",
        "ar_embedder.mlp.2": "adaln_single.emb.aspect_ratio_embedder.linear_2",
    }
    for i in range(depth):
        o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
        renames.update({o + "attn.proj": b + "attn1.to_out.0", o + "cross_attn.q_linear": b + "attn2.to_q",
                        o + "cross_attn.proj": b + "attn2.to_out.0", o + "mlp.fc1": b + "ff.net.0.proj",
                        o + "mlp.fc2": b + "ff.net.2"})
    sd = {"final_layer.scale_shift_table": dsd["scale_shift_table"]}
    for orig, diff in renames.items():
        for wb in ("weight", "bias"):
            if f"{diff}.{wb}" in dsd:
                sd[f"{orig}.{wb}"] = dsd[f"{diff}.{wb}"]
    for i in range(depth):
        o, b = f"blocks.{i}.", f"transformer_blocks.{i}."
        sd[o + "scale_shift_table"] = dsd[b + "scale_shift_table"]
        for wb in ("weight", "bias"):
            sd[o + f"attn.qkv.{wb}"] = torch.cat([dsd[b + f"attn1.to_{n}.{wb}"] for n in "qkv"])
            sd[o + f"cross_attn.kv_linear.{wb}"] = torch.cat([dsd[b + f"attn2.to_{n}.{wb}"] for n in "kv"])
    return sd


def diffusers_config(cfg: PixArtConfig):
    return {
        "_class_name": "PixArtTransformer2DModel",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": cfg.hidden_size // cfg.num_heads,
        "caption_channels": cfg.caption_channels,
        "cross_attention_dim": cfg.hidden_size,
        "dropout": 0.0,
        "in_channels": cfg.in_channels,
        "interpolation_scale": cfg.interpolation_scale,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
        "norm_type": "ada_norm_single",
        "num_attention_heads": cfg.num_heads,
        "num_embeds_ada_norm": 1000,
        "num_layers": cfg.depth,
        "out_channels": cfg.out_channels,
        "patch_size": cfg.patch_size,
        "sample_size": cfg.input_size,
        "upcast_attention": False,
        "use_additional_conditions": cfg.micro_conditions,
    }
