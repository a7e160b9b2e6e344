#!/usr/bin/env bash
# tests/interop/outputs.sh QKDC — the Python outputs of `qkdc run` (runtime/pyout.c, docs/python.md)
# read by NumPy (python3-numpy, the independent side) on tests/interop/outputs.qkd: tiny runs on
# IDX files NumPy writes, with pre dense / net (conv, batchnorm, pool) / pca, head dense / none,
# a baseline, a matched control, and grid cells (one with a baseline shared from another cell):
#  1. every .npz holds the arrays the program implies, with their shapes and dtypes, and their
#     sizes add up to results.json's parameter counts;
#  2. the labels equal the test labels NumPy wrote (the file results.json names), renumbered
#     through `classes`;
#  3. argmax accuracy of each run's test logits equals results.json's test accuracy exactly;
#  4. NumPy recomputes every run's logits from the test images and the .npz alone — pre (dense,
#     conv + batchnorm + pool, pca), amplitude encoding, the circuit of `qkdc check --dump-ir`
#     simulated on a state vector, <Z> or probabilities, control layer, head — and they agree;
#  5. an output blocked by a directory of its name: exit 1 naming the file, no temporary file;
#     the next run (unblocked) resumes from the kept checkpoint and writes outputs equal to an
#     uninterrupted run's;
#  6. the teacher's weights (DIR/teachers/NAME.KEY.npz) give its reported test accuracy in NumPy.
set -uo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
$py -c "import numpy" 2>/dev/null || { echo "outputs.sh: python3-numpy is missing (apt-get install python3-numpy)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
prog=$work/outputs.qkd
cp "$here/outputs.qkd" "$prog"
# the data set: IDX files (MNIST's format and names) of 28x28 images, 10 labels, each label a
# random mean image plus noise
$py - "$work/digits" <<'PY' || fail "writing the data set"
import os, sys
import numpy as np
d = sys.argv[1]
os.makedirs(d)
rng = np.random.default_rng(11)
means = rng.uniform(40, 215, size=(10, 28, 28))
def write(name, n):
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    x = np.clip(means[y] + rng.normal(0, 120, size=(n, 28, 28)), 0, 255).astype(np.uint8)
    with open(os.path.join(d, name + "-images-idx3-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in x.shape) + x.tobytes())
    with open(os.path.join(d, name + "-labels-idx1-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + y.tobytes())
write("train", 1000)
write("t10k", 400)
PY

"$qkdc" run "$prog" --out "$work/run" --threads 1 2>"$work/run.log" || { cat "$work/run.log"; fail "qkdc run"; }
"$qkdc" check --dump-ir "$prog" >"$work/ir.txt" 2>&1 || { cat "$work/ir.txt"; fail "qkdc check --dump-ir"; }

# 5. a directory where an output goes
mkdir -p "$work/blocked/e_amp.distilled.npz" "$work/blocked/e_cnn.distilled.test_logits.npy" \
  "$work/blocked/cells/g/loss=kd1/seed=6.baseline.test_logits.npy"
"$qkdc" run "$prog" --out "$work/blocked" --threads 1 2>"$work/blocked.log"
code=$?
[ "$code" = 1 ] || { cat "$work/blocked.log"; fail "a blocked output gave exit $code, not 1"; }
grep -q "$work/blocked/e_amp.distilled.npz: error: " "$work/blocked.log" || { cat "$work/blocked.log"; fail "the blocked .npz is not named"; }
grep -q "$work/blocked/e_cnn.distilled.test_logits.npy: error: " "$work/blocked.log" || { cat "$work/blocked.log"; fail "the blocked .npy is not named"; }
grep -q "could not be written (.*e_amp.distilled.npz" "$work/blocked.log" || fail "the closing message does not name the .npz"
[ -z "$(find "$work/blocked" -name '*.tmp.*')" ] || fail "temporary files left behind"
[ -d "$work/blocked/e_amp.distilled.npz" ] || fail "the directory in the way was replaced"
[ -e "$work/blocked/e_amp.distilled.ckpt" ] || fail "the checkpoint of the experiment with a missing output is gone"
grep -q "g/loss=kd1/seed=6: not marked done" "$work/blocked.log" || { cat "$work/blocked.log"; fail "the cell with a missing output is not said to be undone"; }
[ -e "$work/blocked/cells/g/loss=kd1/seed=3.json" ] && [ ! -e "$work/blocked/cells/g/loss=kd1/seed=6.json" ] \
  || fail "the cell with a missing output was marked done (or the other was not)"
rmdir "$work/blocked/e_amp.distilled.npz" "$work/blocked/e_cnn.distilled.test_logits.npy" \
  "$work/blocked/cells/g/loss=kd1/seed=6.baseline.test_logits.npy"
"$qkdc" run "$prog" --out "$work/blocked" --threads 1 2>"$work/again.log" || { cat "$work/again.log"; fail "the run again"; }
grep -q "resuming 'e_amp' distilled from epoch 2" "$work/again.log" || { cat "$work/again.log"; fail "the run again did not resume"; }
grep -q "resuming '.*g/loss=kd1/seed=6' distilled from epoch 2" "$work/again.log" || { cat "$work/again.log"; fail "the cell did not resume"; }
grep -q "3 cells already done" "$work/again.log" || { cat "$work/again.log"; fail "the finished cell ran again"; }
[ -z "$(find "$work/blocked" -name '*.ckpt')" ] || fail "checkpoints left after a complete run"

$py - "$work" <<'PY' || exit 1
import json, os, re, sys
import numpy as np
w = sys.argv[1]
run = os.path.join(w, "run")
res = json.load(open(os.path.join(run, "results.json")))
exps = {e["experiment"]: e for e in res["experiments"] if e.get("cell") is None}
cells = {e["cell"]: e for e in res["experiments"] if e.get("cell") is not None}
fails = []
def check(ok, what):
    if not ok: fails.append(what)

# the program's students (outputs.qkd): name -> expected arrays {name: (shape, dtype)}
C = 3
expect = {
  ("e_amp", "distilled"): {"pre.weight": ((16, 784), "f4"), "pre.bias": ((16,), "f4"), "circuit.theta": ((24,), "f8"),
                           "head.weight": ((C, 4), "f4"), "head.bias": ((C,), "f4"), "classes": ((C,), "i8")},
  ("e_cnn", "distilled"): {"pre.0.weight": ((2, 1, 5, 5), "f4"), "pre.0.bias": ((2,), "f4"),
                           "pre.1.weight": ((2,), "f4"), "pre.1.bias": ((2,), "f4"),
                           "pre.1.running_mean": ((2,), "f4"), "pre.1.running_var": ((2,), "f4"),
                           "pre.5.weight": ((4, 72), "f4"), "pre.5.bias": ((4,), "f4"),
                           "circuit.theta": ((12,), "f8"), "classes": ((C,), "i8")},
  ("e_pca", "distilled"): {"pre.mean": ((784,), "f4"), "pre.basis": ((784, 4), "f4"), "circuit.theta": ((6,), "f8"),
                           "head.weight": ((C, 2), "f4"), "head.bias": ((C,), "f4"), "classes": ((C,), "i8")},
  # matched: P = 6, O = 2, F = 4: F*O + O = 10 > 6, so R = 6/2 - 1 = 2 < F projects
  ("e_pca", "control"): {"pre.mean": ((784,), "f4"), "pre.basis": ((784, 4), "f4"), "control.projection": ((2, 4), "f4"),
                         "control.weight": ((2, 2), "f4"), "control.bias": ((2,), "f4"),
                         "head.weight": ((C, 2), "f4"), "head.bias": ((C,), "f4"), "classes": ((C,), "i8")},
}
expect[("e_amp", "baseline")] = expect[("e_amp", "distilled")]
logit_dtype = {("e_cnn", "distilled"): "f8"}  # head: none on f64 probabilities; the rest are float32
untrained = ("running_mean", "running_var", "pre.mean", "pre.basis", "control.projection", "classes")

# the test images, from the files results.json names, filtered as the data set says
files = exps["e_amp"]["provenance"]["data"]  # relative to the directory qkdc ran in: this one
def path_of(tail):
    for f in files:
        if os.path.basename(f["file"]).startswith(tail): return f["file"]
    raise SystemExit("no %s in the provenance: %r" % (tail, files))
def idx(p):
    b = open(p, "rb").read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)
imgs, labs = idx(path_of("t10k-images")), idx(path_of("t10k-labels"))

# the circuits: `qkdc check --dump-ir`
circuits, cur = {}, None
for line in open(os.path.join(w, "ir.txt")):
    if line.startswith("circuit "):
        f = line.split()
        cur = circuits[f[1]] = {"n": int(re.search(r"qubits=(\d+)", line).group(1)),
                                "measure": re.search(r"measure=(\w+)", line).group(1), "gates": []}
    elif line.startswith("#"):  # "# cell NAME": the grid's circuits, the same ones here
        cur = None
    elif cur is not None and line.strip():
        f = line.split()
        cur["gates"].append((f[1], [int(q[1:]) for q in f[2:] if re.fullmatch(r"q\d+", q)],
                             [a for a in f[2:] if not re.fullmatch(r"q\d+", a)]))

def angle(tok, theta):
    if tok.startswith("p"): return theta[int(tok[1:])]
    return float(tok)

def simulate(circ, theta, feats):
    n = circ["n"]
    B = feats.shape[0]
    amp = np.zeros((B, 2 ** n))
    amp[:, :feats.shape[1]] = feats
    norm = np.linalg.norm(amp, axis=1, keepdims=True)
    amp = np.where(norm > 0, amp / np.where(norm > 0, norm, 1), np.eye(1, 2 ** n))
    psi = amp.astype(complex).reshape((B,) + (2,) * n)
    for g, qs, args in circ["gates"]:
        if g in ("rx", "ry", "rz"):
            t = angle(args[0], theta)
            c, s = np.cos(t / 2), np.sin(t / 2)
            U = {"rx": np.array([[c, -1j * s], [-1j * s, c]]), "ry": np.array([[c, -s], [s, c]]),
                 "rz": np.diag([np.exp(-1j * t / 2), np.exp(1j * t / 2)])}[g]
            psi = np.moveaxis(np.tensordot(U, psi, axes=([1], [1 + qs[0]])), 0, 1 + qs[0])
        elif g == "cnot":
            c_, t_ = 1 + qs[0], 1 + qs[1]
            sl = [slice(None)] * (n + 1)
            sl[c_] = 1
            sub = psi[tuple(sl)]
            ta = t_ - 1 if t_ > c_ else t_  # the target's axis once the control's is indexed away
            psi = psi.copy()
            psi[tuple(sl)] = np.flip(sub, axis=ta)
        else:
            raise SystemExit("outputs.sh: gate %s not simulated here" % g)
    p = np.abs(psi.reshape(B, -1)) ** 2
    if circ["measure"] == "probs": return p
    bits = (np.arange(2 ** n)[:, None] >> (n - 1 - np.arange(n))[None, :]) & 1
    return p @ (1 - 2 * bits)

def pre_net(z, x):  # conv(2, 5, stride: 2) batchnorm relu maxpool(2) flatten dense(4) tanh
    x = x.reshape(-1, 1, 28, 28)
    win = np.lib.stride_tricks.sliding_window_view(x, (5, 5), axis=(2, 3))[:, :, ::2, ::2]
    y = np.einsum("bchwij,fcij->bfhw", win, z["pre.0.weight"].astype(np.float64)) + z["pre.0.bias"][None, :, None, None]
    k = lambda a: a.astype(np.float64)[None, :, None, None]
    y = (y - k(z["pre.1.running_mean"])) / np.sqrt(k(z["pre.1.running_var"]) + 1e-5) * k(z["pre.1.weight"]) + k(z["pre.1.bias"])
    y = np.maximum(y, 0)
    y = y.reshape(y.shape[0], 2, 6, 2, 6, 2).max(axis=(3, 5))
    return np.tanh(y.reshape(y.shape[0], -1) @ z["pre.5.weight"].T.astype(np.float64) + z["pre.5.bias"])

student_of = {"e_amp": "amp", "e_cnn": "cnn", "e_pca": "pcs"}
# (experiment as far as the student goes, run, file stem, its results entry)
runs = [(ex, kind, ex, exps[ex]) for ex, kind in expect]
check(sorted(cells) == ["g/loss=kd1/seed=3", "g/loss=kd1/seed=6", "g/loss=kd4/seed=3", "g/loss=kd4/seed=6"], "cells in results.json: %r" % sorted(cells))
for c in sorted(cells):
    cf = json.load(open(os.path.join(run, "cells", c + ".json")))
    check(cf["distilled"] == cells[c]["distilled"] and cf["baseline"] == cells[c]["baseline"], "%s: cell file and results.json differ" % c)
    runs += [("e_amp", kind, "cells/" + c, cf) for kind in ("distilled", "baseline")]
for ex, kind, name, e in runs:
    arrays = expect[(ex, kind)]
    stem = os.path.join(run, "%s.%s" % (name, kind))
    z = np.load(stem + ".npz")
    got = {k: (z[k].shape, z[k].dtype.str[1:]) for k in z.files}
    check(got == arrays, "%s %s: arrays %r, expected %r" % (name, kind, got, arrays))
    if got != arrays: continue
    if kind != "control":
        n_cl = sum(z[k].size for k in z.files if k != "circuit.theta" and not any(u in k for u in untrained))
        check(n_cl == e["student"]["classical_params"], "%s %s: %d classical values, results.json says %d" % (name, kind, n_cl, e["student"]["classical_params"]))
        check(z["circuit.theta"].size == e["student"]["quantum_params"], "%s %s: circuit.theta size" % (name, kind))
    else:
        n_cl = sum(z[k].size for k in z.files if not any(u in k for u in untrained))
        check(n_cl == e["student"]["control_params"], "%s %s: %d trained values, control_params %d" % (name, kind, n_cl, e["student"]["control_params"]))
    classes = z["classes"]
    check(list(classes) == [3, 5, 8], "%s: classes %r" % (name, classes))
    # 2. labels: the data set's, renumbered by `classes`, the first 120 (test_limit) in file order
    y = np.load(os.path.join(run, name + ".test_labels.npy"))
    keep = np.isin(labs, classes)
    ref_y = np.searchsorted(classes, labs[keep])[:120]  # classes ascending here: position = new label
    check(y.dtype == np.int64 and np.array_equal(y, ref_y), "%s: test labels differ from the data set's" % name)
    # 3. the reported accuracy, exactly
    L = np.load(stem + ".test_logits.npy")
    check(L.dtype.str[1:] == logit_dtype.get((ex, kind), "f4") and L.shape == (120, C), "%s %s: logits %s %s" % (name, kind, L.dtype, L.shape))
    acc = float((L.argmax(axis=1) == y).mean())
    check(acc == e[kind]["test_accuracy"], "%s %s: accuracy from the logits %r, results.json %r" % (name, kind, acc, e[kind]["test_accuracy"]))
    check(0.34 < acc, "%s %s: accuracy %r is chance: the check would not discriminate" % (name, kind, acc))
    # 4. the logits recomputed from the images and the .npz alone
    x = imgs[keep][:120].reshape(120, -1).astype(np.float64) / 255
    f = lambda a: a.astype(np.float64)
    if ex == "e_amp": feats = x @ f(z["pre.weight"]).T + f(z["pre.bias"])
    elif ex == "e_cnn": feats = pre_net(z, x)
    else: feats = (x - f(z["pre.mean"])) @ f(z["pre.basis"])
    if kind == "control":
        outs = np.tanh(feats @ f(z["control.projection"]).T @ f(z["control.weight"]).T + f(z["control.bias"]))
    else:
        outs = simulate(circuits[student_of[ex]], z["circuit.theta"], feats)
    ref = outs @ f(z["head.weight"]).T + f(z["head.bias"]) if "head.weight" in z.files else outs[:, :C]
    err = np.abs(ref - L).max()
    check(err < 1e-5, "%s %s: NumPy's logits differ from qkd's by %g" % (name, kind, err))
    # 5. the blocked run, resumed, equals the uninterrupted one
    b = os.path.join(w, "blocked", "%s.%s" % (name, kind))
    zb = np.load(b + ".npz")
    check(all(np.array_equal(zb[k], z[k]) for k in z.files) and zb.files == z.files, "%s %s: the resumed run's .npz differs" % (name, kind))
    check(np.array_equal(np.load(b + ".test_logits.npy"), L), "%s %s: the resumed run's logits differ" % (name, kind))

# 6. the teacher's weights: net small(3) = flatten dense(32) relu dense(3), layers 1 and 3
import glob
tf = glob.glob(os.path.join(run, "teachers", "t.*.npz"))
check(len(tf) == 1, "teacher files: %r" % tf)
if len(tf) == 1:
    z = np.load(tf[0])
    got = {k: (z[k].shape, z[k].dtype.str[1:]) for k in z.files}
    want = {"net.1.weight": ((32, 784), "f4"), "net.1.bias": ((32,), "f4"), "net.3.weight": ((C, 32), "f4"),
            "net.3.bias": ((C,), "f4"), "classes": ((C,), "i8")}
    check(got == want, "teacher arrays %r, expected %r" % (got, want))
    if got == want:
        keep = np.isin(labs, z["classes"])
        x = imgs[keep][:120].reshape(120, -1).astype(np.float64) / 255
        y = np.searchsorted(z["classes"], labs[keep])[:120]
        h = np.maximum(x @ z["net.1.weight"].T.astype(np.float64) + z["net.1.bias"], 0)
        correct = int(((h @ z["net.3.weight"].T.astype(np.float64) + z["net.3.bias"]).argmax(axis=1) == y).sum())
        reported = exps["e_amp"]["teacher"]["test_accuracy"] * 120
        # qkd evaluates in float32, NumPy here in float64: a near-tie may go the other way
        check(abs(correct - reported) <= 1, "teacher: NumPy counts %d correct, results.json %g" % (correct, reported))
        check(correct > 50, "teacher: %d correct of 120 is chance" % correct)

for m in fails: print("FAIL:", m)
print("outputs: %d checks failed" % len(fails) if fails else "outputs: all passed")
sys.exit(1 if fails else 0)
PY
