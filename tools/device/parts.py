"""The GPU machine's side of tools/device/payload.ts: checks and joins the payload parts that the
device calls carried into DIR/call*/ (each with the same manifest.json).

    python3 tools/device/parts.py check DIR        each part's state; exit 3 unless all are here and intact
    python3 tools/device/parts.py sha DIR          the whole payload's sha256, from the manifest
    python3 tools/device/parts.py join DIR FILE    join the parts into FILE and check the whole
"""
import glob
import hashlib
import json
import os
import sys


def manifest(root):
    found = sorted(glob.glob(os.path.join(root, "call*", "manifest.json")))
    if not found:
        sys.exit(f"no call*/manifest.json under {root}: carry the callK folders that the pack script printed")
    with open(found[0]) as f:
        return json.load(f)


def part_path(root, part):
    found = glob.glob(os.path.join(root, "call*", part["name"]))
    return found[0] if found else None


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(root):
    parts = manifest(root)["parts"]
    bad = 0
    for p in parts:
        path = part_path(root, p)
        state = "MISSING" if path is None else "ok" if sha256_of(path) == p["sha256"] else "SHA256 MISMATCH"
        bad += state != "ok"
        print(f"  {p['name']} (call {p['call']}): {state}", file=sys.stderr)
    print(f"parts: {len(parts) - bad} of {len(parts)} ready", file=sys.stderr)
    return 3 if bad else 0


def join(root, dst):
    m = manifest(root)
    h = hashlib.sha256()
    with open(dst, "wb") as out:
        for p in m["parts"]:
            path = part_path(root, p)
            if path is None:
                sys.exit(f"{p['name']} (call {p['call']}) is missing: carry call{p['call']}")
            with open(path, "rb") as f:
                data = f.read()
            h.update(data)
            out.write(data)
    if h.hexdigest() != m["payload"]["sha256"]:
        sys.exit(f"joined payload sha256 {h.hexdigest()} != manifest {m['payload']['sha256']}: pack again")
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "check":
        return check(argv[1])
    if len(argv) == 2 and argv[0] == "sha":
        print(manifest(argv[1])["payload"]["sha256"])
        return 0
    if len(argv) == 3 and argv[0] == "join":
        return join(argv[1], argv[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
