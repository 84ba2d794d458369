#!/usr/bin/env bash
# The GPU measurement of issue 9, on a bare GPU machine (NVIDIA driver, Python with PyTorch and
# CUDA 13 libraries in its nvidia pip packages; no Node, no Deno, no network). The repository
# travels with every device call; the rest (Deno, node_modules with onnxruntime-node 1.29.0,
# the ONNX Runtime 1.29.0 CUDA provider, a Vulkan loader with the GL dispatch libraries) arrives as the parts that
# bench/gpu/pack.ts wrote into bench/gpu/out/callK/, one folder per call (see README.md).
#
#   bash bench/gpu/run.sh stage     check which parts have arrived (sha256); nothing else
#   bash bench/gpu/run.sh torch     PyTorch rows (fp32+TF32, fp16) and the card's matmul rate
#   bash bench/gpu/run.sh fora      reassemble, fora on the CUDA EP (fp16) and WebGPU EP (fp16), report
#   bash bench/gpu/run.sh all       torch, then fora
#   bash bench/gpu/run.sh dry-run   here, on the CPU: reassemble into a temp folder, fora tiny on
#                                   the CPU with the packed Deno and node_modules (run it under
#                                   `unshare -n` to prove that nothing is fetched)
#
# Results: $RES (bench/gpu/out/results, kept on the device between calls) and copies in $OUT.
# Knobs: FORA_GPU_WORK (/tmp/fora-gpu), FORA_GPU_PRESET (XL/2-256), FORA_GPU_STEPS (250),
# FORA_GPU_REPEATS (3), FORA_GPU_WEBGPU_TIMEOUT (180 s), PYTHON (python3).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-}
PARTS=${FORA_GPU_PARTS:-$ROOT/bench/gpu/out}
WORK=${FORA_GPU_WORK:-/tmp/fora-gpu}
RES=${FORA_GPU_RESULTS:-$ROOT/bench/gpu/out/results}
OUTDIR=${OUT:-$RES/returned}
PY=${PYTHON:-python3}
PRESET=${FORA_GPU_PRESET:-XL/2-256}
STEPS=${FORA_GPU_STEPS:-250}
REPEATS=${FORA_GPU_REPEATS:-3}
WEBGPU_TIMEOUT=${FORA_GPU_WEBGPU_TIMEOUT:-180}
P=$WORK/fora-gpu        # the unpacked payload
APP=$P/app              # deno.json pinning onnxruntime-node 1.29.0, its lock and node_modules, + the repo's sources

say() { echo "[run.sh $(date +%T)] $*" >&2; }

# ---- parts -------------------------------------------------------------------------------------

# Prints each part's state; fails unless all are here and intact.
check_parts() { "$PY" "$ROOT/tools/device/parts.py" check "$PARTS"; }

# Joins the parts, checks the whole, unpacks into $WORK (once per payload).
assemble() {
  check_parts || { say "parts missing: carry every callK folder (the machine may have been restarted: start again at call 1)"; exit 3; }
  local sha
  sha=$("$PY" "$ROOT/tools/device/parts.py" sha "$PARTS")
  if [[ -f $P/.payload-sha256 && $(cat "$P/.payload-sha256") == "$sha" ]]; then say "payload already unpacked in $P"; return; fi
  rm -rf "$P"
  say "joining parts and unpacking into $WORK ..."
  "$PY" "$ROOT/tools/device/parts.py" join "$PARTS" "$WORK/payload.tar.xz" || exit 3
  if command -v xz >/dev/null; then
    xz -dc -T0 "$WORK/payload.tar.xz" | tar -x -C "$WORK" || exit 3
  else
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$WORK/payload.tar.xz" "$WORK" || exit 3
  fi
  rm -f "$WORK/payload.tar.xz"
  echo "$sha" >"$P/.payload-sha256"
}

# ---- environment -------------------------------------------------------------------------------

setup_env() {
  # The repository's sources next to the payload's deno.json, deno.lock and node_modules.
  tar -C "$ROOT" --exclude=./node_modules --exclude=./bench/gpu/out --exclude=./tools/train/gpu/out --exclude=./out --exclude=./.git \
    --exclude=./deno.json --exclude=./deno.lock --exclude=./.whl --exclude=./.gl -cf - . | tar -C "$APP" -xf -
  export DENO_DIR=$WORK/deno-dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
  DENO=$P/deno
  # CUDA libraries of the Python environment's nvidia-* packages (cuBLAS, cuRAND, cudart, cuDNN, ...).
  local nv
  nv=$("$PY" - <<'EOF'
import glob, os, sys
dirs = []
for base in sys.path:
    nv = os.path.join(base, "nvidia")
    if os.path.isdir(nv):
        for d in sorted(glob.glob(os.path.join(nv, "**", "lib"), recursive=True)):
            if glob.glob(os.path.join(d, "*.so*")):
                dirs.append(os.path.realpath(d))
print(":".join(dict.fromkeys(dirs)))
EOF
  )
  CUDA_LIBS=${nv:-none}
  VULKAN="system"
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then VULKAN="packed ($P/vulkan)"; nv="${nv:+$nv:}$P/vulkan"; fi
  export LD_LIBRARY_PATH="${nv}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
      [[ -f $f ]] && { export VK_DRIVER_FILES=$f; break; }
    done
  fi
  # fora links the CUDA provider libraries next to onnxruntime-node's core from here (lib/runtime/devices.ts).
  export FORA_ORT_CUDA_DIR=$P/ort-cuda
  "$PY" - "$RES/env.json" "$P" "$CUDA_LIBS" "$VULKAN" "$("$DENO" --version | head -1)" <<'EOF'
import json, sys
out, p, libs, vk, deno = sys.argv[1:]
payload = json.load(open(p + "/PAYLOAD.json"))
json.dump({"deno": deno, "onnxruntime_node": payload["onnxruntime_node"]["package"],
           "cuda_provider": f"{payload['cuda_provider']['package']} (ONNX Runtime {payload['cuda_provider']['onnxruntime']}, CUDA 13)",
           "cubin_trim": payload["cuda_provider"]["trim"] if isinstance(payload["cuda_provider"]["trim"], str) else
                         f"cubins kept for sm_{payload['cuda_provider']['trim']['keep_cubin_arch']}",
           "cuda_libs": libs, "vulkan": vk}, open(out, "w"), indent=1)
EOF
  "$PY" - "$ROOT/deno.json" "$P/PAYLOAD.json" <<'EOF' || say "WARNING: fora's deno.json imports changed since the payload was packed; re-run pack.ts if an import fails"
import json, sys
now = {k: v for k, v in json.load(open(sys.argv[1]))["imports"].items() if k != "onnxruntime-node"}
sys.exit(0 if now == json.load(open(sys.argv[2])).get("imports", now) else 1)
EOF
  say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}; FORA_ORT_CUDA_DIR=$FORA_ORT_CUDA_DIR"
}

# measure SECONDS ARGS...: bench/gpu/measure.ts with the packed Deno, offline, at most SECONDS.
measure() { local limit=$1; shift; (cd "$APP" && timeout "$limit" "$DENO" run --cached-only --allow-all bench/gpu/measure.ts "$@"); }

# ---- the two sides -----------------------------------------------------------------------------

run_torch() {
  say "card and matmul rate ..."
  "$PY" "$ROOT/bench/gpu/card.py" >"$RES/card.json" || say "card.py failed"
  say "PyTorch fp32 + TF32 ..."
  PYTHONUNBUFFERED=1 "$PY" "$ROOT/bench/torch_sampling.py" --device cuda --tf32 --preset "$PRESET" --steps "$STEPS" \
    --intervals 1,3 --repeats "$REPEATS" --json >"$RES/torch-tf32.json" || say "torch TF32 row failed"
  say "PyTorch fp16 ..."
  PYTHONUNBUFFERED=1 "$PY" "$ROOT/bench/torch_sampling.py" --device cuda --dtype float16 --preset "$PRESET" --steps "$STEPS" \
    --intervals 1,3 --repeats "$REPEATS" --json >"$RES/torch-fp16.json" || say "torch fp16 row failed"
  cp "$RES"/card.json "$RES"/torch-*.json "$OUTDIR"/ 2>/dev/null
}

run_fora() {
  assemble
  setup_env
  measure 60 devices >"$RES/devices.json" || say "device report failed"
  say "random $PRESET weights and the bundle ..."
  measure 300 prepare --work "$WORK/work" --preset "$PRESET" --precision fp32,fp16 || { say "prepare failed"; report; exit 1; }
  say "fora, CUDA EP, fp16 ..."
  measure 300 run --work "$WORK/work" --device cuda --precision fp16 --steps "$STEPS" --intervals 1,3 --repeats "$REPEATS" \
    --json "$RES/fora-cuda-fp16.json" || say "fora CUDA row failed"
  say "fora, WebGPU EP, fp16 (at most ${WEBGPU_TIMEOUT} s) ..."
  measure "$WEBGPU_TIMEOUT" run --work "$WORK/work" --device webgpu --precision fp16 --steps "$STEPS" --intervals 1,3 --repeats 1 \
    --json "$RES/fora-webgpu-fp16.json" || say "fora WebGPU row failed or timed out"
  report
}

report() {
  "$PY" "$ROOT/bench/gpu/report.py" "$RES" "$OUTDIR" >/dev/null && say "report: $OUTDIR/results.md"
  cp "$RES"/devices.json "$OUTDIR"/ 2>/dev/null
  cat "$OUTDIR/results.md" 2>/dev/null
}

dry_run() {
  # Everything fora-side, tiny, on the CPU, from the packed payload alone.
  WORK=$(mktemp -d /tmp/fora-gpu-dry.XXXXXX); P=$WORK/fora-gpu; APP=$P/app
  RES=$WORK/results; OUTDIR=$WORK/returned; mkdir -p "$RES" "$OUTDIR"
  say "dry run in $WORK"
  assemble
  setup_env
  measure 60 devices >"$RES/devices.json" || exit 1
  measure 120 prepare --work "$WORK/work" --source "$APP/fixtures/dit-tiny/original" --precision fp32,fp16 || exit 1
  measure 120 run --work "$WORK/work" --device cpu --precision fp16 --steps 20 --intervals 1,3 --repeats 2 --json "$RES/fora-cuda-fp16.json" || exit 1
  if measure 120 run --work "$WORK/work" --device webgpu --precision fp16 --steps 20 --intervals 1,3 --repeats 1 \
    --json "$RES/fora-webgpu-fp16.json" 2>"$WORK/webgpu.err"; then say "WebGPU ran"; else say "WebGPU (expected to fail on this CPU-only machine):"; cat "$WORK/webgpu.err" >&2; fi
  report
  say "dry run ok: $WORK (the rows labelled CUDA/WebGPU above ran on the CPU)"
}

[[ $MODE == dry-run ]] || mkdir -p "$RES" "$OUTDIR" "$WORK"
case "$MODE" in
  stage) check_parts; exit 0 ;;
  torch) check_parts; run_torch ;;
  fora) run_fora ;;
  all) run_torch; run_fora ;;
  dry-run) dry_run ;;
  *) sed -n '2,22p' "$0"; exit 2 ;;
esac
