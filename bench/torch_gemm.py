"""PyTorch's fp32 GEMM rate on DiT's linear-layer shapes (the peer side of bench/gemm_rates.ts).

Reads a JSON list of [M, K, N] shapes from argv[1]; prints one JSON object: the rate of
x[M,K] @ w[K,N] per shape (median of the timed repeats), with the BLAS kernels used.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_gemm.py '[[512,1152,4608]]'
"""
import json
import os
import statistics
import sys
import time

THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/torch_sampling.py: two thread pools, two cores
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fair_blas  # noqa: E402

removed = fair_blas.unset_overrides()
import torch  # noqa: E402


def rate(m, k, n, seconds=1.0):
    torch.manual_seed(0)
    x, w = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        x @ w
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        x @ w
        times.append(time.perf_counter() - t0)
    return 2 * m * k * n / statistics.median(times) / 1e9


def main():
    torch.set_num_threads(THREADS)
    kernels = fair_blas.check(removed)
    shapes = json.loads(sys.argv[1])
    with torch.inference_mode():
        gflops = [rate(*s) for s in shapes]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas_kernels": kernels, "gflops": gflops}))


if __name__ == "__main__":
    main()
