#!/usr/bin/env bash
# Issue 18's GPU training, on a bare GPU machine (NVIDIA driver, python3 with a CUDA build of
# PyTorch and numpy; no network). The repository travels with every device call and holds the
# trainer and the shipped weights; Fashion-MNIST's training split arrives as the parts that
# tools/train/gpu/pack.ts wrote into tools/train/gpu/out/callK/, one folder per call.
#
#   bash tools/train/gpu/run.sh stage   check which parts have arrived (sha256); nothing else
#   bash tools/train/gpu/run.sh train   check the GPU, unpack the data, measure steps/s, train
#
# train: continues models/fashion-dit (its EMA weights, fresh AdamW) for FORA_TRAIN_MINUTES of
# training with the GPU recipe below, and writes the EMA weights (model.safetensors, config.json,
# training.json) to $OUT/fashion-dit/ every FORA_TRAIN_SNAPSHOT_MINUTES and at the end, the loss log
# to $OUT/loss.jsonl, the console to $OUT/console.log and what was measured to $OUT/run.json.
# Without $OUT (here), $FORA_TRAIN_WORK/returned.
#
# Knobs: FORA_TRAIN_MINUTES (6), FORA_TRAIN_BATCH (512), FORA_TRAIN_PROBE_SECONDS (10),
# FORA_TRAIN_SNAPSHOT_MINUTES (2), FORA_TRAIN_DEVICE (cuda; cpu for a dry run here),
# FORA_TRAIN_WORK (/tmp/fora-train), FORA_TRAIN_PARTS (tools/train/gpu/out), PYTHON (python3).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
MODE=${1:-}
PARTS=${FORA_TRAIN_PARTS:-$ROOT/tools/train/gpu/out}
WORK=${FORA_TRAIN_WORK:-/tmp/fora-train}
OUTDIR=${OUT:-$WORK/returned}
PY=${PYTHON:-python3}
DEVICE=${FORA_TRAIN_DEVICE:-cuda}
MINUTES=${FORA_TRAIN_MINUTES:-6}
BATCH=${FORA_TRAIN_BATCH:-512}
PROBE_S=${FORA_TRAIN_PROBE_SECONDS:-10}
SNAPSHOT_MIN=${FORA_TRAIN_SNAPSHOT_MINUTES:-2}
INIT=models/fashion-dit   # relative to $ROOT, so that training.json records it as such
DATA=$WORK/data/fashion-mnist

say() { echo "[run.sh $(date +%T)] $*" >&2; }

# Sets GPU to what PyTorch reports, or fails before anything else runs.
check_device() {
  if [[ $DEVICE != cuda ]]; then GPU="none (FORA_TRAIN_DEVICE=$DEVICE)"; say "no GPU check: $GPU"; return; fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || say "nvidia-smi failed (continuing: PyTorch decides)"
  GPU=$("$PY" -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"PyTorch {torch.__version__} sees no CUDA device (CUDA build: {torch.version.cuda}); set FORA_TRAIN_DEVICE=cpu only for a dry run")
print(f"{torch.cuda.get_device_name(0)}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}")') || exit 4
  say "GPU: $GPU"
}

# Joins and unpacks the parts into $WORK/data (once per payload).
unpack() {
  "$PY" "$ROOT/tools/device/parts.py" check "$PARTS" ||
    { say "parts missing: carry every callK folder, back to back (a machine given back in between loses them: start again at call 1)"; exit 3; }
  local sha
  sha=$("$PY" "$ROOT/tools/device/parts.py" sha "$PARTS") || exit 3
  if [[ -f $WORK/data/.sha256 && $(cat "$WORK/data/.sha256") == "$sha" ]]; then say "data already unpacked in $WORK/data"; return; fi
  rm -rf "$WORK/data" && mkdir -p "$WORK/data"
  "$PY" "$ROOT/tools/device/parts.py" join "$PARTS" "$WORK/data.tar.xz" || exit 3
  "$PY" -c 'import sys, tarfile
safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], **safe)' "$WORK/data.tar.xz" "$WORK/data" || exit 3
  rm -f "$WORK/data.tar.xz"
  echo "$sha" >"$WORK/data/.sha256"
  say "data: $(ls "$DATA" | tr '\n' ' ')"
}

train() {
  mkdir -p "$WORK" "$OUTDIR"
  check_device
  unpack
  cd "$ROOT" || exit 1
  # The recipe. Batch 512 (4x the CPU runs' 128: at 64 tokens x 160 channels a smaller batch would
  # mostly leave the GPU waiting for kernel launches) with the peak lr scaled by sqrt(4): 1.2e-3; Min-SNR-5
  # weighting (tools/train/README.md); bf16 autocast; EMA 0.999, a ~1000-step window, which a
  # run of many thousand steps can afford; warm-up 500 steps for the fresh AdamW.
  local recipe=(--device "$DEVICE" --precision bf16 --batch "$BATCH" --lr 6e-4 --lr-batch-scale sqrt --min-snr-gamma 5
    --data "$DATA")
  say "probe: ${PROBE_S} s of training steps at batch $BATCH ..."
  local probe
  probe=$(PYTHONUNBUFFERED=1 "$PY" tools/train/train_dit.py "${recipe[@]}" --bench-seconds "$PROBE_S" | tail -1) ||
    { say "the probe failed (above)"; exit 1; }
  say "probe: $probe"
  # The cosine runs over the steps the remaining minutes should hold at the measured rate (95% of it:
  # logging, checkpoints and weight snapshots pause the steps), so it reaches its floor in time
  # whatever the GPU; --max-minutes then stops the run (a total over all runs, so the shipped
  # weights' minutes are added).
  local plan
  plan=$("$PY" - "$INIT/training.json" "$probe" "$MINUTES" <<'EOF'
import json, sys
tr, probe, minutes = json.load(open(sys.argv[1])), json.loads(sys.argv[2]), float(sys.argv[3])
total = tr["steps"] + max(1, int(probe["steps_per_s"] * minutes * 60 * 0.95))
print(total, round(tr["minutes"] + minutes, 3))
EOF
  ) || exit 1
  local total_steps=${plan% *} max_minutes=${plan#* }
  say "training $MINUTES min: lr cosine to global step $total_steps, --max-minutes $max_minutes"
  rm -rf "$WORK/ckpt"
  local started=$SECONDS
  PYTHONUNBUFFERED=1 "$PY" tools/train/train_dit.py "${recipe[@]}" --init-from "$INIT" \
    --warmup 500 --ema 0.999 --lr-decay cosine-steps --lr-total-steps "$total_steps" --max-minutes "$max_minutes" \
    --weights-minutes "$SNAPSHOT_MIN" --log-every 200 \
    --out "$OUTDIR/fashion-dit" --ckpt-dir "$WORK/ckpt" --log "$OUTDIR/loss.jsonl" 2>&1 | tee "$OUTDIR/console.log"
  local rc=$?
  "$PY" - "$OUTDIR" "$probe" "$GPU" "$BATCH" "$MINUTES" "$total_steps" "$((SECONDS - started))" "$rc" <<'EOF'
import json, os, sys
out, probe, gpu, batch, minutes, total, wall, rc = sys.argv[1:]
tr_path = os.path.join(out, "fashion-dit", "training.json")
tr = json.load(open(tr_path)) if os.path.exists(tr_path) else {}
json.dump({"gpu": gpu, "probe": json.loads(probe), "batch": int(batch), "minutes": float(minutes),
           "lr_total_steps": int(total), "train_wall_s": int(wall), "exit_code": int(rc),
           "steps": tr.get("steps"), "epochs": tr.get("epochs"), "final_loss": tr.get("final_loss")},
          open(os.path.join(out, "run.json"), "w"), indent=1)
EOF
  cat "$OUTDIR/run.json"
  [[ $rc == 0 ]] && say "done: $OUTDIR/fashion-dit" || say "training failed (exit $rc); $OUTDIR/fashion-dit holds the last snapshot, if any"
  return "$rc"
}

case "$MODE" in
  stage) "$PY" "$ROOT/tools/device/parts.py" check "$PARTS"; exit 0 ;;
  train) train ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
