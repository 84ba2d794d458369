"""Train a small CNN classifier on Fashion-MNIST, scoring images exactly as fora's pixel-space
DiT produces them (32x32, 1 channel, [-1, 1], 28x28 content padded with -1), and export it.

Outputs (in --out, default models/fashion-classifier):
  classifier.onnx          opset 17; input `images` [N,1,32,32] f32 (dynamic N);
                           outputs `logits` [N,10] and `features` [N,F] (penultimate, after ReLU)
  golden.safetensors       `images` [8,1,32,32] (test images), PyTorch `logits`, `features` (F32)
  test_stats.safetensors   `mu` [F], `sigma` [F,F] of the features over the 10k test images
                           (computed in float64, stored F32), for a Frechet distance
  info.json                test accuracy, architecture, training figures, and the real-vs-real
                           Frechet distance (first 10k train images vs the test stats)

    OMP_NUM_THREADS=1 nice -n 19 /usr/bin/python3 tools/train/train_classifier.py --out models/fashion-classifier
"""
import argparse
import json
import os
import sys
import time

THREADS = int(os.environ.get("OMP_NUM_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import st  # noqa: E402
from train_dit import CLASS_NAMES, load_split, to_model_space  # noqa: E402

FEATURES = 128


class Classifier(nn.Module):
    """[N,1,32,32] -> (logits [N,10], features [N,128]). BatchNorm folds into conv at export (eval)."""

    def __init__(self, width=16, features=FEATURES):
        super().__init__()
        w = width

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        # sized for a shared 2-core CPU: ~2.7M MACs per image
        self.body = nn.Sequential(
            block(1, w), nn.MaxPool2d(2),              # 16x16
            block(w, 2 * w), nn.MaxPool2d(2),          # 8x8
            block(2 * w, 4 * w), nn.MaxPool2d(2),      # 4x4
        )
        self.fc = nn.Linear(4 * w * 16, features)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(features, 10)

    def forward(self, x):
        h = self.body(x).flatten(1)
        f = F.relu(self.fc(h))
        return self.head(self.drop(f)), f


def frechet_distance(mu1, s1, mu2, s2):
    """|mu1-mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^(1/2)), via the symmetric form sqrt(s1) s2 sqrt(s1) (float64)."""
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    e = np.linalg.eigvalsh(r @ s2 @ r)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(e, 0, None)).sum())


@torch.no_grad()
def evaluate(model, x, y, bs=1000):
    model.eval()
    correct, feats = 0, []
    for i in range(0, x.shape[0], bs):
        logits, f = model(x[i:i + bs])
        correct += int((logits.argmax(1) == y[i:i + bs]).sum())
        feats.append(f.double())
    return correct / x.shape[0], torch.cat(feats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "models", "fashion-classifier"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="smoke test: use only the first N train images")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)

    xtr_u8, ytr = load_split("train")
    if a.limit:
        xtr_u8, ytr = xtr_u8[:a.limit], ytr[:a.limit]
    xte_u8, yte = load_split("t10k")
    xtr, xte = to_model_space(xtr_u8).to(dev), to_model_space(xte_u8).to(dev)
    ytr, yte = torch.from_numpy(ytr).to(dev), torch.from_numpy(yte).to(dev)
    n = xtr.shape[0]

    model = Classifier().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    steps = a.epochs * (n // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    log = []
    for ep in range(a.epochs):
        model.train()
        g = torch.Generator().manual_seed(a.seed * 1000 + ep)
        perm = torch.randperm(n, generator=g).to(dev)
        tot, k = 0.0, 0
        for i in range(0, n - a.batch + 1, a.batch):
            idx = perm[i:i + a.batch]
            x, y = xtr[idx], ytr[idx]
            # augmentation: horizontal flip and +-2 px shifts of the 28x28 content within the pad
            f = torch.rand(x.shape[0], device=dev) < 0.5
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
            dx, dy = [int(v) for v in torch.randint(-2, 3, (2,))]
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            logits, _ = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss)
            k += 1
        acc, _ = evaluate(model, xte, yte)
        rec = {"epoch": ep + 1, "train_loss": tot / k, "test_acc": acc, "minutes": round((time.time() - t0) / 60, 2)}
        log.append(rec)
        print(json.dumps(rec), flush=True)

    model = model.cpu().eval()
    acc, feats = evaluate(model, xte.cpu(), yte.cpu())
    os.makedirs(a.out, exist_ok=True)

    # ONNX export (opset 17), dynamic batch
    onnx_path = os.path.join(a.out, "classifier.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 32, 32), onnx_path + ".tmp", opset_version=17,
                      input_names=["images"], output_names=["logits", "features"],
                      dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
                      do_constant_folding=True)
    os.replace(onnx_path + ".tmp", onnx_path)

    # golden: 8 test images (first of each of 8 classes, deterministic) and PyTorch outputs
    pick = []
    for c in range(8):
        pick.append(int((yte.cpu() == c).nonzero()[0]))
    gx = xte.cpu()[pick].contiguous()
    with torch.no_grad():
        gl, gf = model(gx)
    st.save(os.path.join(a.out, "golden.safetensors"),
            {"images": gx.numpy().astype(np.float32), "logits": gl.numpy().astype(np.float32),
             "features": gf.numpy().astype(np.float32), "labels": yte.cpu()[pick].numpy().astype(np.int64)},
            metadata={"indices": json.dumps(pick)})

    mu = feats.mean(0)
    fc = feats - mu
    sigma = fc.T @ fc / (feats.shape[0] - 1)
    st.save(os.path.join(a.out, "test_stats.safetensors"),
            {"mu": mu.numpy().astype(np.float32), "sigma": sigma.numpy().astype(np.float32)},
            metadata={"n": str(feats.shape[0]), "split": "t10k", "computed": "float64", "ddof": "1"})

    # real-vs-real reference: Frechet distance of the first 10k train images' features to the test stats
    tr_acc, tr_feats = evaluate(model, xtr.cpu()[:10000], ytr.cpu()[:10000])
    fd_ref = frechet_distance(tr_feats.mean(0).numpy(), np.cov(tr_feats.numpy(), rowvar=False),
                              mu.numpy(), sigma.numpy())
    dead = int((torch.diagonal(sigma) < 1e-8).sum())

    info = {
        "test_accuracy": acc,
        "train10k_accuracy": tr_acc,
        "fd_train10k_vs_test": fd_ref,
        "dead_features": dead, "test_images": int(xte.shape[0]), "features": FEATURES,
        "input": {"name": "images", "shape": ["n", 1, 32, 32], "range": [-1.0, 1.0],
                  "pad": {"from": 28, "to": 32, "value": -1.0}},
        "outputs": {"logits": ["n", 10], "features": ["n", FEATURES]},
        "class_names": CLASS_NAMES, "opset": 17,
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "seed": a.seed,
        "minutes": round((time.time() - t0) / 60, 2), "torch": torch.__version__, "log": log,
        "command": "OMP_NUM_THREADS=1 nice -n 19 /usr/bin/python3 tools/train/train_classifier.py --out models/fashion-classifier",
        "golden_indices": pick,
    }
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"test accuracy {acc:.4f}; wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
