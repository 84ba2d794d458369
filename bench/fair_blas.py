"""The PyTorch side of a CPU benchmark, on the BLAS kernels its own CPU would get.

This workplace sets OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) in the environment because old
OpenBLAS builds misbehave on some processors. On an AVX-512 CPU that pins OpenBLAS to its
Haswell (AVX2) kernels and halves its GEMM rate, so a comparison against it would flatter
fora. A benchmark peer imports this module before torch or numpy: it drops both variables
from its own process only (tests and CI keep them), and after the import `check()` reads back
which kernels OpenBLAS chose and refuses to measure on kernels that are not the CPU's own.

    import fair_blas          # before `import torch`
    removed = fair_blas.unset_overrides()
    import torch
    report = fair_blas.check(removed)   # raises SystemExit naming the problem
"""
import ctypes
import os

OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# OpenBLAS 0.3.x core names by the widest vector ISA their GEMM kernels use.
AVX512_CORES = {"SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS"}
AVX2_CORES = {"HASWELL", "ZEN", "SKYLAKE", "EXCAVATOR"}


def unset_overrides():
    """Removes the core-type overrides from this process (OpenBLAS reads them at load time)."""
    return {k: os.environ.pop(k) for k in OVERRIDES if k in os.environ}


def loaded_openblas():
    """Paths of the OpenBLAS libraries mapped into this process (after torch/numpy loaded one)."""
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "openblas" in os.path.basename(path).lower():
                found.add(os.path.realpath(path))
    return sorted(found)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def expected_cores(flags):
    """The core names whose kernels use this CPU's widest vector ISA (None: no opinion)."""
    if "avx512f" in flags and "avx512bw" in flags:
        return AVX512_CORES
    if "avx2" in flags and "fma" in flags:
        return AVX2_CORES
    return None


def check(removed, flags=None):
    """Reads OpenBLAS's configuration; SystemExit if its kernels are not this CPU's own."""
    libs = loaded_openblas()
    if not libs:
        return {"openblas": None, "removed": sorted(removed), "note": "no OpenBLAS loaded (another BLAS)"}
    lib = ctypes.CDLL(libs[0])
    lib.openblas_get_config.restype = ctypes.c_char_p
    lib.openblas_get_corename.restype = ctypes.c_char_p
    config = lib.openblas_get_config().decode()
    core = lib.openblas_get_corename().decode()
    still = [k for k in OVERRIDES if k in os.environ]
    if still:
        raise SystemExit(f"fair_blas: {', '.join(still)} still set; call unset_overrides() before importing torch or numpy")
    want = expected_cores(cpu_flags() if flags is None else flags)
    if want is not None and core.upper() not in want:
        raise SystemExit(
            f"fair_blas: OpenBLAS runs its {core} kernels but this CPU supports {'/'.join(sorted(want))}; "
            f"the comparison would handicap the PyTorch side ({config})"
        )
    return {"openblas": config, "core": core, "library": libs[0], "removed": sorted(removed)}
