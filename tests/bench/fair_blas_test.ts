/**
 * The PyTorch peer of the CPU benchmarks runs on its CPU's own OpenBLAS kernels even when
 * the environment pins them (OPENBLAS_CORETYPE), and refuses to measure when it cannot.
 * Needs Debian's python3-torch; ignored where it is missing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../bundle/helpers.ts";

const PYTHON = "/usr/bin/python3";
const BENCH = join(ROOT, "bench");

function python(code: string[], env: Record<string, string>) {
  return new Deno.Command(PYTHON, {
    args: code,
    cwd: BENCH,
    env: { OMP_NUM_THREADS: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output().then((o) => ({ code: o.code, stdout: new TextDecoder().decode(o.stdout), stderr: new TextDecoder().decode(o.stderr) }));
}

const HAS_TORCH = await python(["-c", "import torch"], {}).then((r) => r.code === 0, () => false);
const PINNED = { OPENBLAS_CORETYPE: "Haswell", OPENBLAS_L2_SIZE: "512" };

Deno.test({
  name: "fair baseline: torch_sampling.py drops the pinned core type and reports the kernels it got",
  ignore: !HAS_TORCH,
  async fn() {
    const r = await python([join(BENCH, "torch_sampling.py"), "--self-test"], PINNED);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /overrides removed from this process: \['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'\]/);
    const config = r.stderr.match(/OpenBLAS: (OpenBLAS [^;]+);/)?.[1];
    assert.ok(config, r.stderr);
    const check = await python(["-c", "import fair_blas; print(sorted(fair_blas.expected_cores(fair_blas.cpu_flags()) or []))"], {});
    const expected: string[] = JSON.parse(check.stdout.replaceAll("'", '"'));
    if (expected.length > 0) assert.ok(expected.some((core) => config.toUpperCase().includes(core)), `${config} vs ${expected}`);
  },
});

Deno.test({
  name: "fair baseline: a pinned core type that reaches OpenBLAS is refused, naming the variable or the kernels",
  ignore: !HAS_TORCH,
  async fn() {
    const stillSet = await python(["-c", "import fair_blas, torch; fair_blas.check({})"], PINNED);
    assert.notEqual(stillSet.code, 0);
    assert.match(stillSet.stderr, /OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE still set/);
    // Loaded pinned, variable removed afterwards: OpenBLAS keeps its Haswell kernels, which an AVX-512 CPU must not get.
    const pinned = await python([
      "-c",
      "import os, fair_blas, torch; fair_blas.unset_overrides(); fair_blas.check({}, flags={'avx512f', 'avx512bw', 'avx2', 'fma'})",
    ], PINNED);
    assert.notEqual(pinned.code, 0);
    assert.match(pinned.stderr, /OpenBLAS runs its Haswell kernels but this CPU supports COOPERLAKE\/SAPPHIRERAPIDS\/SKYLAKEX/);
  },
});
