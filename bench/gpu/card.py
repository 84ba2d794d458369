"""The GPU's identity and its measured dense matmul rate, for the FLOP-floor line of bench/gpu.

Rate = 2*n^3 / time of one n x n x n product (a multiply-add counts as 2 FLOP), the mean of
--reps timed products after warm-ups, random data, for each dtype. Prints one JSON object.

    python3 bench/gpu/card.py [--n 8192] [--reps 20]
"""
import argparse
import json
import subprocess
import time

import torch


def nvidia_smi():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"nvidia-smi failed: {e}"


def rate(dtype, n, reps, tf32=False):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / reps
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * n**3 / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    p = torch.cuda.get_device_properties(0)
    rates = {
        "float16": rate(torch.float16, args.n, args.reps),
        "bfloat16": rate(torch.bfloat16, args.n, args.reps),
        "tf32": rate(torch.float32, args.n, args.reps, tf32=True),
        "float32": rate(torch.float32, args.n, max(3, args.reps // 4)),
    }
    print(json.dumps({
        "name": p.name,
        "capability": f"{p.major}.{p.minor}",
        "multiprocessors": p.multi_processor_count,
        "memory_gib": round(p.total_memory / 2**30, 1),
        "nvidia_smi": nvidia_smi(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "matmul": {"n": args.n, "reps": args.reps, "flop_per_s": rates},
    }))


if __name__ == "__main__":
    main()
