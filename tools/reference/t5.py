"""T5 v1.1 encoder reference (PyTorch), written from the published architecture, for golden fixtures.

Parameter names follow transformers' T5EncoderModel: `shared.weight`,
`encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight`,
`encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight` (shared by all blocks),
`encoder.block.{i}.layer.{0,1}.layer_norm.weight`,
`encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`, `encoder.final_layer_norm.weight`.

What makes it T5 v1.1: RMS norm (no mean, no bias), no 1/sqrt(d) scaling of the attention scores,
a learned relative position bias (bucketed, bidirectional) added to the scores of every layer,
a gated-GELU feed-forward (gelu tanh approximation) and no biases anywhere.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class T5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6

    def hf_config(self):
        """The transformers config.json of a T5EncoderModel with these sizes."""
        return {
            "_name_or_path": "tiny-t5-v1_1", "architectures": ["T5EncoderModel"], "model_type": "t5",
            "d_ff": self.d_ff, "d_kv": self.d_kv, "d_model": self.d_model, "dense_act_fn": "gelu_new",
            "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
            "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": self.layer_norm_epsilon,
            "num_decoder_layers": self.num_layers, "num_heads": self.num_heads, "num_layers": self.num_layers,
            "pad_token_id": 0, "relative_attention_max_distance": self.relative_attention_max_distance,
            "relative_attention_num_buckets": self.relative_attention_num_buckets, "tie_word_embeddings": False,
            "torch_dtype": "float32", "vocab_size": self.vocab_size,
        }


def relative_position_bucket(rel, num_buckets=32, max_distance=128):
    """Bidirectional T5 bucket of rel = key_pos - query_pos (int64 tensor), computed in float32 as T5 does."""
    half = num_buckets // 2
    buckets = (rel > 0).to(torch.long) * half
    n = torch.abs(rel)
    max_exact = half // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, half - 1))
    return buckets + torch.where(is_small, n, large)


def rms_norm(x, weight, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(var + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class T5Encoder(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.cfg = cfg
        inner = cfg.num_heads * cfg.d_kv
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rel_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)
        self.layers = nn.ModuleList()
        for _ in range(cfg.num_layers):
            m = nn.Module()
            m.ln0 = nn.Parameter(torch.ones(cfg.d_model))
            m.q, m.k, m.v = (nn.Linear(cfg.d_model, inner, bias=False) for _ in range(3))
            m.o = nn.Linear(inner, cfg.d_model, bias=False)
            m.ln1 = nn.Parameter(torch.ones(cfg.d_model))
            m.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            m.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
            m.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
            self.layers.append(m)
        self.final_ln = nn.Parameter(torch.ones(cfg.d_model))

    def position_bias(self, n, m=None):
        """[1, heads, n, m] bias for queries 0..n-1 and keys 0..m-1."""
        m = n if m is None else m
        rel = torch.arange(m)[None, :] - torch.arange(n)[:, None]
        b = relative_position_bucket(rel, self.cfg.relative_attention_num_buckets, self.cfg.relative_attention_max_distance)
        return self.rel_bias(b).permute(2, 0, 1)[None]

    def forward(self, ids, mask=None):
        """ids [B, n] int64, mask [B, n] (1 = token, 0 = padding) -> last hidden state [B, n, d_model]."""
        cfg = self.cfg
        B, n = ids.shape
        h = self.shared(ids)
        bias = self.position_bias(n)
        if mask is not None:
            bias = bias + (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        split = lambda t: t.view(B, n, cfg.num_heads, cfg.d_kv).transpose(1, 2)
        for m in self.layers:
            x = rms_norm(h, m.ln0, cfg.layer_norm_epsilon)
            q, k, v = split(m.q(x)), split(m.k(x)), split(m.v(x))
            w = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)  # no 1/sqrt(d_kv): T5 folds it into init
            h = h + m.o((w @ v).transpose(1, 2).reshape(B, n, -1))
            x = rms_norm(h, m.ln1, cfg.layer_norm_epsilon)
            h = h + m.wo(gelu_new(m.wi_0(x)) * m.wi_1(x))
        return rms_norm(h, self.final_ln, cfg.layer_norm_epsilon)

    def hf_state_dict(self):
        """State dict in transformers' T5EncoderModel names."""
        sd = {"shared.weight": self.shared.weight,
              "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": self.rel_bias.weight,
              "encoder.final_layer_norm.weight": self.final_ln}
        for i, m in enumerate(self.layers):
            p = f"encoder.block.{i}.layer."
            sd[p + "0.layer_norm.weight"] = m.ln0
            for n in "qkvo":
                sd[p + f"0.SelfAttention.{n}.weight"] = getattr(m, n).weight
            sd[p + "1.layer_norm.weight"] = m.ln1
            for n in ("wi_0", "wi_1", "wo"):
                sd[p + f"1.DenseReluDense.{n}.weight"] = getattr(m, n).weight
        return {k: v.detach() for k, v in sd.items()}
