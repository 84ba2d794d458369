"""Train the DiT in chunks, score each chunk's EMA with `fora eval`, and keep the best weights.

Each chunk resumes train_dit.py for --every more minutes (the first one starts from --init-from,
e.g. the shipped weights, whose checkpoint was not kept), converts the EMA to a temporary fp32
bundle, and runs `fora eval --samples 200 --sampler ddim --steps 50 -N 1` (cfg 4) on it (fixed seed, so
every chunk is scored on the same noise). The starting weights are scored first, so nothing
replaces them unless it scores higher. The best weights folder (model.safetensors, config.json,
training.json) is copied to --best; every score is appended to <work>/evals.jsonl. Interrupt it
and run the same command again to continue: train_dit.py resumes its checkpoint and the scores
so far are reread.

"Best" is the highest class agreement up to --target-agreement (issue 18's 0.85), then the lower
Frechet distance: once chunks meet the agreement target, their agreements differ by noise (with
200 samples its standard error is about 0.03) while the distance still ranks them. Measure the
shipped candidate again with 1000 samples before believing a small gain.

    OMP_NUM_THREADS=2 /usr/bin/python3 tools/train/train_best.py --work tools/train/checkpoints/fashion-dit-cont \\
        --best tools/train/checkpoints/fashion-dit-best --init-from models/fashion-dit --minutes 180 --every 20 \\
        -- --precision bf16 --min-snr-gamma 5 --lr 6e-4 --warmup 200 --lr-decay cosine-steps --lr-total-steps 16500

(the recipe and the measurements behind it: tools/train/README.md, "The next training session")

Everything after `--` goes to train_dit.py (its --max-minutes, --out, --ckpt-dir, --log, --resume
and --init-from are set here).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EVAL_ARGS = ["--sampler", "ddim", "--steps", "50", "-N", "1", "--json"]
WEIGHT_FILES = ("model.safetensors", "config.json", "training.json")


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def fora(*args):
    return ["deno", "task", "-q", "fora", *args]


def score(weights, bundle, samples):
    """fp32 bundle of a weights folder -> the eval summary (accuracy, frechet_distance, ...)."""
    run(fora("convert", weights, bundle, "--force", "--precision", "fp32", "-q"))
    cmd = fora("eval", "-m", bundle, "--samples", str(samples), *EVAL_ARGS)
    print("+ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def copy_weights(src, dst):
    """Replace dst by a copy of src's weight files, never leaving a half-copied dst."""
    tmp = dst.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for f in WEIGHT_FILES:
        shutil.copy2(os.path.join(src, f), os.path.join(tmp, f))
    old = dst.rstrip("/") + ".old"
    if os.path.exists(dst):
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def rank(r, target):
    return (min(r["accuracy"], target), -r["frechet_distance"])


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="checkpoint, loss log, latest EMA, bundle and evals.jsonl")
    ap.add_argument("--best", required=True, help="the best-scoring weights folder (replaced when beaten)")
    ap.add_argument("--init-from", required=True, help="weights folder to start from when <work> has no checkpoint")
    ap.add_argument("--minutes", type=float, required=True, help="training minutes to add (over all chunks)")
    ap.add_argument("--every", type=float, default=20.0, help="training minutes per chunk (default 20)")
    ap.add_argument("--samples", type=int, default=200, help="fora eval samples per score (default 200)")
    ap.add_argument("--target-agreement", type=float, default=0.85,
                    help="class agreement above which only the Frechet distance ranks chunks (default 0.85)")
    a = ap.parse_args(own)
    for flag in ("--max-minutes", "--out", "--ckpt-dir", "--log", "--resume", "--init-from"):
        if flag in extra:
            ap.error(f"{flag} is set by this script; remove it after --")

    out, bundle, evals = (os.path.join(a.work, p) for p in ("out", "bundle", "evals.jsonl"))
    os.makedirs(a.work, exist_ok=True)
    history = []
    if os.path.exists(evals):
        with open(evals) as f:
            history = [json.loads(line) for line in f if line.strip()]

    def record(weights, label):
        with open(os.path.join(weights, "training.json")) as f:
            tr = json.load(f)
        s = score(weights, bundle, a.samples)
        rec = {"label": label, "step": tr["steps"], "epochs": tr["epochs"], "minutes": tr["minutes"],
               "accuracy": s["accuracy"], "frechet_distance": round(s["frechet_distance"], 3),
               "per_class_accuracy": s["per_class_accuracy"]}
        best = max(history, key=lambda r: rank(r, a.target_agreement), default=None)
        rec["best"] = best is None or rank(rec, a.target_agreement) > rank(best, a.target_agreement)
        history.append(rec)
        with open(evals, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
        if rec["best"]:
            copy_weights(weights, a.best)
        return tr["minutes"]

    if history:
        start = history[0]["minutes"]
        done = history[-1]["minutes"]
    else:
        start = done = record(a.init_from, "start")
    end = start + a.minutes
    while done < end - 0.05:
        target = min(end, done + a.every)
        run([sys.executable, os.path.join(HERE, "train_dit.py"), "--out", out,
             "--ckpt-dir", os.path.join(a.work, "ck"), "--log", os.path.join(a.work, "log.jsonl"),
             "--resume", "--init-from", a.init_from, "--max-minutes", f"{target:.2f}", *extra])
        before, done = done, record(out, "chunk")
        if done <= before:  # stopped by something else (e.g. --max-steps after --)
            break
    best = max(history, key=lambda r: rank(r, a.target_agreement))
    print(f"best: step {best['step']} ({best['epochs']} epochs), agreement {best['accuracy']}, "
          f"FD {best['frechet_distance']} ({a.samples} samples) -> {a.best}", flush=True)


if __name__ == "__main__":
    main()
