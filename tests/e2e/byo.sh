#!/usr/bin/env bash
# tests/e2e/byo.sh QKDC SRC — examples/byo_teacher.qkd as written, on stand-in files laid out as
# scripts/byo_teacher.py writes them (runs/byo_teacher/: fmnist/*.npy and the teacher's logits),
# made small by NumPy (the real script needs PyTorch and minutes): `qkdc check` passes and a run
# of one epoch reports the teacher accuracy NumPy computes from the test logits.
set -euo pipefail
qkdc=$1 src=$2
/usr/bin/python3 -c "import numpy" 2>/dev/null || { echo "byo.sh: python3-numpy is missing"; exit 1; }
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/examples"
cp "$src/examples/byo_teacher.qkd" "$w/examples/"
/usr/bin/python3 - "$w/runs/byo_teacher" <<'PY'
import os, sys
import numpy as np
d = sys.argv[1]
os.makedirs(f"{d}/fmnist")
rng = np.random.default_rng(5)
y = {"train": rng.integers(0, 10, 300), "test": rng.integers(0, 10, 100)}
for s in ("train", "test"):
    np.save(f"{d}/fmnist/x_{s}.npy", rng.integers(0, 256, (len(y[s]), 28, 28)).astype(np.uint8))
    np.save(f"{d}/fmnist/y_{s}.npy", y[s].astype(np.int64))
    np.save(f"{d}/resnet_{s}_logits.npy", (rng.normal(size=(len(y[s]), 10)) + 3 * np.eye(10)[y[s]] * (rng.random(len(y[s]))[:, None] < 0.8)).astype(np.float32))
lte = np.load(f"{d}/resnet_test_logits.npy")
open(f"{d}/expected_acc", "w").write(repr(float((lte.argmax(1) == y["test"]).mean())))
PY
cd "$w"
"$qkdc" check examples/byo_teacher.qkd
"$qkdc" run examples/byo_teacher.qkd --set byo_teacher.train.epochs=1 --threads 1 2>run.log || { cat run.log; exit 1; }
/usr/bin/python3 - <<'PY'
import json
r = json.load(open("runs/byo_teacher/results.json"))
want = float(open("runs/byo_teacher/expected_acc").read())
got = [e["teacher"]["test_accuracy"] for e in r["experiments"]]
assert got and all(g == want for g in got), (got, want)
print("byo_teacher: the example runs; teacher accuracy", want)
PY
