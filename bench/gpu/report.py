"""Merges one bench/gpu run's JSON files into results.md and results.json.

    python3 bench/gpu/report.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds what run.sh wrote: card.json, torch-tf32.json, torch-fp16.json,
fora-cuda-fp16.json, fora-webgpu-fp16.json, devices.json, env.json (any may be missing:
the table says so). The FLOP floor counts the model's multiply-adds for 250 batch-2
steps of the measured config (2 FLOP each, as the matmul rate counts them).
"""
import json
import os
import sys


def load(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def dit_macs_per_step(depth, hidden, heads, patch, latent, channels=4, batch=2, learn_sigma=True):
    """Multiply-adds of one DiT forward over `batch` rows (DiT's "Gflops" count these)."""
    d, t = hidden, (latent // patch) ** 2
    out = channels * (2 if learn_sigma else 1)
    per_row = (
        t * channels * patch * patch * d          # patch embedding
        + 256 * d + d * d                         # timestep MLP
        + depth * (6 * d * d                      # adaLN modulation
                   + t * 12 * d * d               # qkv, proj, fc1, fc2
                   + 2 * t * t * d)               # q k^T and attn v
        + 2 * d * d + t * d * patch * patch * out  # final adaLN and linear
    )
    return batch * per_row


def row_of(res, interval):
    for r in (res or {}).get("results", []):
        if r["interval"] == interval:
            return r
    return None


def fmt(x, spec=".3f", unit=""):
    return "-" if x is None else f"{x:{spec}}{unit}"


def main():
    src, dst = sys.argv[1], sys.argv[2]
    card, env, devices = load(src, "card.json"), load(src, "env.json"), load(src, "devices.json")
    rows = [
        ("fora", "CUDA EP", "fp16", load(src, "fora-cuda-fp16.json")),
        ("fora", "WebGPU EP", "fp16", load(src, "fora-webgpu-fp16.json")),
        ("PyTorch, FORA per-layer cache", "CUDA", "fp32 + TF32", load(src, "torch-tf32.json")),
        ("PyTorch, FORA per-layer cache", "CUDA", "fp16", load(src, "torch-fp16.json")),
    ]
    fora_cfg = next((r[3]["config"] for r in rows if r[3] and r[3].get("config")), None)
    cfg = fora_cfg or {"depth": 28, "hidden": 1152, "heads": 16, "patch": 2, "latent": 32}
    steps = next((r[3]["steps"] for r in rows if r[3]), 250)
    macs = dit_macs_per_step(cfg["depth"], cfg["hidden"], cfg["heads"], cfg["patch"], cfg["latent"]) * steps
    flop = 2 * macs
    rates = (card or {}).get("matmul", {}).get("flop_per_s", {})

    torch_tf32_n3 = row_of(rows[2][3], 3)
    torch_fp16_n3 = row_of(rows[3][3], 3)
    lines = []
    gpu = card["name"] if card else "unknown GPU (card.json missing)"
    lines.append(f"## GPU: DiT-XL/2-256 sampling, fora vs PyTorch ({gpu})\n")
    lines.append("Written by `bench/gpu/run.sh` (bench/gpu/README.md); random weights at the real size, DDPM with "
                 f"learned-range variance, {steps} steps, one sample with classifier-free guidance 1.5 (batch 2), "
                 "time per image of the sampling loop only (median of repeats, after warm-up), all rows in one run "
                 "on one card.\n")
    if card:
        lines.append(f"- card: {card['name']} (compute {card['capability']}, {card['multiprocessors']} SMs, "
                     f"{card['memory_gib']} GiB); nvidia-smi: {card['nvidia_smi']}")
        lines.append(f"- PyTorch {card['torch']}, CUDA {card['cuda']}, cuDNN {card['cudnn']}")
    if env:
        lines.append(f"- fora: Deno {env.get('deno', '?')}, onnxruntime-node {env.get('onnxruntime_node', '?')} with "
                     f"CUDA provider {env.get('cuda_provider', '?')}; CUDA libraries from {env.get('cuda_libs', '?')}; "
                     f"Vulkan loader: {env.get('vulkan', '?')}")
    lines.append("")
    lines.append("| implementation | device | precision | N=1 s/img | N=3 s/img | N=3 speed-up | % of ideal | "
                 "N=3 vs PyTorch TF32 N=3 | step check vs CPU fp32 |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, dev, prec, res in rows:
        n1, n3 = row_of(res, 1), row_of(res, 3)
        if res and res.get("implementation") == "fora" and res.get("device") not in (None, "cuda", "webgpu"):
            dev = f"{res['device']} (standing in for {dev})"  # a dry run on the CPU
        sp = n3["speedup_vs_n1"] if n3 and n1 else None
        ideal = n3["ideal_speedup"] if n3 and "ideal_speedup" in n3 else (steps / n3["full_steps"] if n3 else None)
        vs = torch_tf32_n3["seconds"] / n3["seconds"] if n3 and torch_tf32_n3 else None
        chk = (res or {}).get("check_vs_cpu_fp32")
        lines.append(f"| {name} | {dev} | {prec} | {fmt(n1 and n1['seconds'])} | {fmt(n3 and n3['seconds'])} | "
                     f"{fmt(sp, '.2f', 'x')} | {fmt(sp / ideal * 100 if sp and ideal else None, '.1f', '%')} | "
                     f"{fmt(vs, '.2f', 'x faster') if vs else '-'} | "
                     f"{('rel. err %.1e' % chk['rel_error']) if chk else ('not run' if res else 'no result')} |")
    lines.append("")

    targets = []
    fora = rows[0][3]
    f1, f3 = row_of(fora, 1), row_of(fora, 3)
    if f3 and torch_tf32_n3:
        r = f3["seconds"] / torch_tf32_n3["seconds"]
        targets.append(f"- fora N=3 / PyTorch TF32 N=3 = {r:.3f} (target <= 0.5): {'met' if r <= 0.5 else 'NOT met'}")
    if f3 and torch_fp16_n3:
        r = f3["seconds"] / torch_fp16_n3["seconds"]
        targets.append(f"- fora N=3 / PyTorch fp16 N=3 = {r:.3f} (target < 1): {'met' if r < 1 else 'NOT met'}")
    if f1 and f3:
        ideal = steps / f3["full_steps"]
        sp = f1["seconds"] / f3["seconds"]
        targets.append(f"- fora N=3 speed-up {sp:.2f}x = {100 * sp / ideal:.1f}% of the ideal {ideal:.2f}x "
                       f"(target >= 90%): {'met' if sp >= 0.9 * ideal else 'NOT met'}")
    if targets:
        lines.append("Targets (issue 9):\n")
        lines.extend(targets)
        lines.append("")

    lines.append(f"FLOP floor: {steps} batch-2 steps of this config are {macs / 1e12:.1f} T multiply-adds = "
                 f"{flop / 1e12:.1f} TFLOP at 2 FLOP per multiply-add (DiT's '118.6 Gflops' for XL/2 count "
                 "multiply-adds, so the issue's '59 TFLOP' is this multiply-add count).")
    for key, label in (("float16", "fp16"), ("tf32", "TF32"), ("bfloat16", "bf16"), ("float32", "fp32")):
        if key in rates:
            floor = flop / rates[key]
            extra = f"; fora CUDA fp16 N=1 is {f1['seconds'] / floor:.1f}x this floor" if key == "float16" and f1 else ""
            lines.append(f"- {label} matmul rate {rates[key] / 1e12:.0f} TFLOP/s (n={card['matmul']['n']}): floor "
                         f"{floor:.3f} s per image{extra}")
    if devices:
        lines.append("")
        lines.append(f"Device report (fora): CUDA ready {devices['cuda']['ready']}, WebGPU ready {devices['webgpu']['ready']}; "
                     + "; ".join(devices["cuda"]["problems"] + devices["webgpu"]["problems"] + devices["cuda"]["notes"]))
    md = "\n".join(lines) + "\n"
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(dst, "results.json"), "w") as f:
        json.dump({"card": card, "env": env, "devices": devices, "flop": flop, "macs": macs,
                   "rows": [{"implementation": n, "device": d, "precision": p, "result": r} for n, d, p, r in rows]},
                  f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
