"""Stable Diffusion VAE decoder (diffusers AutoencoderKL layout and parameter names), for goldens.

decode(z) = decoder(post_quant_conv(z / scaling_factor)); no clamp.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6  # every GroupNorm in the decoder


def group_norm(groups, ch):
    return nn.GroupNorm(groups, ch, eps=EPS, affine=True)


class ResnetBlock(nn.Module):
    """norm1, SiLU, conv1, norm2, SiLU, conv2, plus (1x1 conv_shortcut when channels change)."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class SpatialSelfAttention(nn.Module):
    """Single head over the H*W tokens, scale 1/sqrt(C), residual add."""

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = group_norm(groups, ch)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
        return x + self.to_out[0](a).transpose(1, 2).reshape(n, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(ch, ch, groups), ResnetBlock(ch, ch, groups)])
        self.attentions = nn.ModuleList([SpatialSelfAttention(ch, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpBlock(nn.Module):
    def __init__(self, cin, cout, n_resnets, groups, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout, groups) for j in range(n_resnets)])
        self.upsamplers = nn.ModuleList([Upsample(cout)]) if upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        chans = list(reversed(cfg["block_out_channels"]))
        g = cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], chans[0], 3, padding=1)
        self.mid_block = MidBlock(chans[0], g)
        self.up_blocks = nn.ModuleList([
            UpBlock(chans[max(i - 1, 0)], chans[i], cfg["layers_per_block"] + 1, g, upsample=i < len(chans) - 1)
            for i in range(len(chans))])
        self.conv_norm_out = group_norm(g, chans[-1])
        self.conv_out = nn.Conv2d(chans[-1], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for up in self.up_blocks:
            x = up(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    """post_quant_conv + decoder; state dict names match diffusers' AutoencoderKL (decoder half)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.post_quant_conv = nn.Conv2d(cfg["latent_channels"], cfg["latent_channels"], 1)
        self.decoder = Decoder(cfg)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z / self.cfg["scaling_factor"]))


def vae_config(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, latent_channels=4,
               sample_size=16, scaling_factor=0.18215):
    n = len(block_out_channels)
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": list(block_out_channels),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "in_channels": 3,
        "latent_channels": latent_channels,
        "layers_per_block": layers_per_block,
        "norm_num_groups": norm_num_groups,
        "out_channels": 3,
        "sample_size": sample_size,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * n,
    }
