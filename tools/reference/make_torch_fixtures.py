"""Writes fixtures/torch/: PyTorch checkpoints (torch.save, zip format) of the tiny DiT, and hostile pickles.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/reference/make_torch_fixtures.py

Run after make_goldens.py: the checkpoints hold exactly the weights of
fixtures/dit-tiny/original/model.safetensors, so converting either must give the same latents.

  dit-tiny.pt            plain state dict (OrderedDict, fp32), as DiT's released files are
  dit-tiny-train.pt      training checkpoint: {"model": a few other tensors, "ema": fp16 state dict
                         with a non-contiguous view, "opt": ..., "args": argparse.Namespace}
  dit-micro-bf16.pt      a 1-block, hidden-32 DiT in bf16 with a transposed (non-contiguous) view
  dit-micro/             the same micro weights (as F32) in the original layout: config.json + model.safetensors
  dtypes.pt, dtypes.json small tensors of every storage type, views, and their expected values
  PixArt-tiny.pth        {"state_dict": fixtures/pixart-tiny/original's weights in fp16, plus pos_embed}, as PixArt's
                         released .pth files are laid out
  PixArt-tiny-MS.pth     {"state_dict": fixtures/pixart-family/alpha-1024-ms/original's weights in fp32}, laid out as
                         PixArt-XL-2-1024-MS.pth is: size embedders (csize_embedder, ar_embedder), no pos_embed
  pixart-t5/             fixtures/pixart-tiny's T5 encoder as transformers' sharded .bin files (fp16):
                         pytorch_model-0000N-of-00002.bin and pytorch_model.bin.index.json
  hostile/*.pt           zip archives laid out as torch.save writes them, whose data.pkl is hostile
"""
import argparse
import collections
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from dit import DiT, DiTConfig, pos_embed_2d  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "torch")


def tiny_state_dict():
    weights, _ = st.load(os.path.join(ROOT, "fixtures", "dit-tiny", "original", "model.safetensors"))
    return collections.OrderedDict((k, torch.from_numpy(weights[k])) for k in sorted(weights))


def non_contiguous(t):
    """The same values, stored transposed: a view whose strides are not row-major."""
    v = t.t().contiguous().t()
    assert not v.is_contiguous() and torch.equal(v, t)
    return v


def save(obj, name):
    path = os.path.join(OUT, name)
    torch.save(obj, path)
    return path


def micro():
    cfg = DiTConfig(depth=1, hidden_size=32, num_heads=2, patch_size=2, input_size=4, in_channels=4, num_classes=3, learn_sigma=True)
    model = DiT(cfg, "original")
    g = torch.Generator().manual_seed(7)
    sd = collections.OrderedDict()
    for k, p in model.state_dict().items():
        v = torch.randn(p.shape, generator=g) / (p[0].numel() ** 0.5 if p.ndim >= 2 else 10.0)
        sd[k] = v.to(torch.bfloat16)
    sd["pos_embed"] = pos_embed_2d(cfg.hidden_size, cfg.grid)[None].float().to(torch.bfloat16)
    as_f32 = {k: v.float() for k, v in sd.items()}
    sd["blocks.0.mlp.fc1.weight"] = non_contiguous(sd["blocks.0.mlp.fc1.weight"])
    save(sd, "dit-micro-bf16.pt")
    d = os.path.join(OUT, "dit-micro")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({k: getattr(cfg, k) for k in (
            "depth", "hidden_size", "num_heads", "patch_size", "input_size", "in_channels", "num_classes", "learn_sigma")}, f, indent=2)
        f.write("\n")
    st.save(os.path.join(d, "model.safetensors"), as_f32, {"format": "pt"})


def pixart():
    """PixArt's original checkpoint and a .bin-sharded T5, holding exactly the weights of fixtures/pixart-tiny."""
    weights, _ = st.load(os.path.join(ROOT, "fixtures", "pixart-tiny", "original", "model.safetensors"))
    sd = collections.OrderedDict((k, torch.from_numpy(weights[k]).half()) for k in sorted(weights))
    hidden, grid = sd["x_embedder.proj.weight"].shape[0], 4
    sd["pos_embed"] = pos_embed_2d(hidden, grid)[None].float()
    save({"state_dict": sd}, "PixArt-tiny.pth")
    te = os.path.join(ROOT, "fixtures", "pixart-tiny", "diffusers", "text_encoder")
    with open(os.path.join(te, "model.safetensors.index.json")) as f:
        index = json.load(f)
    d = os.path.join(OUT, "pixart-t5")
    os.makedirs(d, exist_ok=True)
    weight_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors, _ = st.load(os.path.join(te, shard))
        name = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
        torch.save({k: torch.from_numpy(v).half() for k, v in sorted(tensors.items())}, os.path.join(d, name))
        weight_map.update({k: name for k in tensors})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


def pixart_ms():
    """The 1024-MS layout: PixArt's inference script drops pos_embed (it is recomputed per size), and the file has none."""
    weights, _ = st.load(os.path.join(ROOT, "fixtures", "pixart-family", "alpha-1024-ms", "original",
                                      "diffusion_pytorch_model.safetensors"))
    assert "pos_embed" not in weights and "csize_embedder.mlp.0.weight" in weights
    sd = collections.OrderedDict((k, torch.from_numpy(weights[k])) for k in sorted(weights))
    save({"state_dict": sd}, "PixArt-tiny-MS.pth")


def dtypes():
    """Every storage type, plus views: expected values as plain JSON lists."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6) / 8 - 1
    tensors = {
        "f32": base.float(), "f16": base.half(), "bf16": base.bfloat16(), "f64": base,
        "i64": torch.arange(-3, 3, dtype=torch.int64), "i32": torch.arange(-3, 3, dtype=torch.int32),
        "i16": torch.arange(-3, 3, dtype=torch.int16), "i8": torch.arange(-3, 3, dtype=torch.int8),
        "u8": torch.arange(0, 6, dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
        "transposed": base.float().t(), "column": base.float()[:, 2], "offset_rows": base.float()[1:3],
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(base.float()[2:]),  # pickled through torch._utils._rebuild_parameter
    }
    save(tensors, "dtypes.pt")
    expected = {k: {"shape": list(v.shape), "values": v.detach().double().flatten().tolist(), "contiguous": v.is_contiguous()}
                for k, v in tensors.items()}
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------- hostile pickles

CREATED = "pickle-ran.txt"


class RunsShell:
    """What an attacker pickles: unpickling calls os.system (posix.system) with a command."""

    def __reduce__(self):
        return (os.system, (f"echo pwned > {CREATED}",))


def opcodes(*parts):
    return b"".join(p.encode("latin1") if isinstance(p, str) else p for p in parts)


def global_call(module, name, arg="x"):
    """GLOBAL module.name, then name(arg) by REDUCE."""
    return opcodes(b"\x80\x02", f"c{module}\n{name}\n", b"X", len(arg).to_bytes(4, "little"), arg, b"\x85R.")


def hostile():
    deep = 20_000
    empty_hooks = opcodes("ccollections\nOrderedDict\n)R")
    storage = lambda numel: opcodes("(X\x07\x00\x00\x00storageq\x00ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK",
                                    bytes([numel]), "tQ")
    tensor = lambda numel, offset, size: opcodes("ctorch._utils\n_rebuild_tensor_v2\n(", storage(numel), "K", bytes([offset]),
                                                 "K", bytes([size]), "\x85K\x01\x85\x89", empty_hooks, "tR")
    cases = {
        "os-system": pickle.dumps({"w": RunsShell()}, protocol=2),
        "os-system-global": global_call("os", "system", f"echo pwned > {CREATED}"),
        "builtins-eval": global_call("builtins", "eval", "print(1)"),
        "builtins-exec": global_call("builtins", "exec", "print(1)"),
        "builtins-import": global_call("builtins", "__import__", "os"),
        "builtins-getattr": opcodes(b"\x80\x02cbuiltins\ngetattr\n)R."),
        "stack-global-system": opcodes(b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R."),
        "allowed-name-other-module": opcodes(b"\x80\x02cos\nOrderedDict\n)R."),
        "allowed-module-other-name": opcodes(b"\x80\x02ctorch._utils\n_load_from_bytes\n)R."),
        "build-on-list": opcodes(b"\x80\x02]}b."),
        "inst": opcodes(b"\x80\x02(X\x01\x00\x00\x00xicollections\nOrderedDict\n."),
        "obj": opcodes(b"\x80\x02(ccollections\nOrderedDict\no."),
        "newobj": opcodes(b"\x80\x02ccollections\nOrderedDict\n)\x81."),
        "reduce-storage-class": opcodes(b"\x80\x02ctorch\nFloatStorage\n)R."),
        "memo-unset": opcodes(b"\x80\x02h\x05."),
        "stack-underflow": opcodes(b"\x80\x020."),
        "appends-without-mark": opcodes(b"\x80\x02]e."),
        "stop-with-two": opcodes(b"\x80\x02NN."),
        "deep-nesting": opcodes(b"\x80\x02", b"]" * deep, b"a" * (deep - 1), b"."),
        "truncated-pickle": opcodes(b"\x80\x02X\xff\x00\x00\x00abc"),
        "storage-beyond-entry": opcodes(b"\x80\x02}X\x01\x00\x00\x00w", tensor(200, 0, 4), b"s."),
        "offset-beyond-storage": opcodes(b"\x80\x02}X\x01\x00\x00\x00w", tensor(4, 2, 4), b"s."),
    }
    d = os.path.join(OUT, "hostile")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, pkl in cases.items():
        with zipfile.ZipFile(os.path.join(d, f"{name}.pt"), "w", zipfile.ZIP_STORED) as z:
            # A fixed timestamp, so that re-running gives byte-identical files.
            for entry, data in (("data.pkl", pkl), ("data/0", bytes(16)), ("version", b"3\n")):  # data/0: four float32 zeros
                z.writestr(zipfile.ZipInfo(f"archive/{entry}", date_time=(1980, 1, 1, 0, 0, 0)), data)
    # The fixtures must really be what they claim: Python's own unpickler runs the command.
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for name in ("os-system", "os-system-global"):
                with zipfile.ZipFile(os.path.join(d, f"{name}.pt")) as z:
                    pickle.loads(z.read("archive/data.pkl"))
                assert os.path.exists(CREATED), name
                os.remove(CREATED)
        finally:
            os.chdir(cwd)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    sd = tiny_state_dict()
    save(sd, "dit-tiny.pt")
    ema = collections.OrderedDict((k, v.half()) for k, v in sd.items())
    ema["blocks.0.attn.qkv.weight"] = non_contiguous(ema["blocks.0.attn.qkv.weight"])
    model = collections.OrderedDict((k, -sd[k]) for k in ("final_layer.linear.bias", "t_embedder.mlp.0.bias"))
    args = argparse.Namespace(model="DiT-tiny/2", image_size=64, num_classes=10, epochs=1, global_batch_size=2,
                              global_seed=0, vae="ema", results_dir="results", log_every=100, ckpt_every=50_000)
    opt = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                          "amsgrad": False, "params": [0, 1]}]}
    save({"model": model, "ema": ema, "opt": opt, "args": args}, "dit-tiny-train.pt")
    micro()
    pixart()
    pixart_ms()
    dtypes()
    hostile()
    total = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
