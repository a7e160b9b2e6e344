#!/usr/bin/env bash
# tests/interop/arrays.sh QKDC — data sets and teachers from NumPy arrays (issue J), with NumPy
# (python3-numpy) as the independent side:
#  1. the same uint8 images as IDX files, as .npy files and as one .npz (written by NumPy) give
#     bit-identical trainings (losses and accuracies per epoch), with classes, per_class,
#     limits and validation applied;
#  2. float features (N, D) with 12 classes, and a teacher given by its logits (a ridge
#     classifier fitted in NumPy): the teacher accuracy qkd reports on each experiment's test
#     split equals NumPy's on the rows and columns the data-set options select (classes ->
#     per_class -> limits), for logits over the source's 12 labels and over the selected ones;
#     a distilled student trains on it;
#  3. `qkdc check` reads the class count from the labels and rejects classes outside it;
#  4. bad files — truncated, wrong magic, unsupported dtype, Fortran order, x/y count mismatch,
#     labels out of range, non-finite features, logits rows or columns that do not match — exit 1
#     with the file named and no results.json written.
set -uo pipefail
qkdc=$1
py=/usr/bin/python3
$py -c "import numpy" 2>/dev/null || { echo "arrays.sh: python3-numpy is missing (apt-get install python3-numpy)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$py - "$qkdc" "$work" <<'PY'
import json, os, shutil, struct, subprocess, sys
import numpy as np
qkdc, w = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(11)
fails = 0

def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", what)

MEANS = {}
def blobs(n, K, shape, dtype):  # both splits of a set share its class means
    means = MEANS.setdefault((K, shape), rng.uniform(40, 215, size=(K,) + shape))
    y = rng.integers(0, K, size=n)
    x = means[y] + rng.normal(0, 35, size=(n,) + shape)
    if dtype == np.uint8:
        x = np.clip(np.rint(x), 0, 255)
    else:
        x = x / 255.0
    return x.astype(dtype), y

def run(prog, name, *args):
    p = os.path.join(w, name + ".qkd")
    open(p, "w").write(prog)
    out = os.path.join(w, "out_" + name)
    r = subprocess.run([qkdc, "run", p, "--out", out, "--threads", "1", *args], capture_output=True, text=True, cwd=w)
    res = os.path.join(out, "results.json")
    return r, (json.load(open(res)) if r.returncode == 0 and os.path.exists(res) else None), out

def write_idx(path, a):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.astype(np.uint8).tobytes())

# ---- 1. IDX, .npy and .npz of the same uint8 images train identically ----------------------------
xtr, ytr = blobs(900, 10, (8, 8), np.uint8)
xte, yte = blobs(300, 10, (8, 8), np.uint8)
os.makedirs(f"{w}/idx"); os.makedirs(f"{w}/npy")
write_idx(f"{w}/idx/train-images-idx3-ubyte", xtr); write_idx(f"{w}/idx/train-labels-idx1-ubyte", ytr)
write_idx(f"{w}/idx/t10k-images-idx3-ubyte", xte); write_idx(f"{w}/idx/t10k-labels-idx1-ubyte", yte)
for n, a in (("x_train", xtr), ("y_train", ytr.astype(np.int64)), ("x_test", xte), ("y_test", yte.astype(np.int32))):
    np.save(f"{w}/npy/{n}.npy", a)
np.savez_compressed(f"{w}/u8.npz", x_train=xtr[:, None], y_train=ytr.astype(np.uint8), x_test=xte[:, None], y_test=yte.astype(np.uint8))

def prog1(src):
    return f'''use "std/circuits"
dataset d {{ source: "{src}"  classes: [7, 2, 5, 0]  per_class: 60  test_limit: 100  validation: 20  scale: standard }}
student s {{ qubits: 3  pre: dense(8)  encode: amplitude  circuit: strong(layers: 2)  measure: z  head: dense(4) }}
experiment e {{ data: d  student: s  loss: ce  train {{ optimizer: adam(lr: 0.01)  epochs: 3  batch: 16  seed: 3 }} }}
'''
runs = {}
for src in ("./idx", "./npy", "./u8.npz"):
    r, res, _ = run(prog1(src), "same_" + src.strip("./").replace(".", "_"))
    check(r.returncode == 0 and res, f"{src}: qkdc run failed: {r.stderr[-400:]}")
    if res:
        d = res["experiments"][0]["distilled"]
        runs[src] = (d["train_loss"], d["test_accuracy_per_epoch"], d.get("val_accuracy_per_epoch"))
check(len(runs) == 3 and runs["./idx"] == runs["./npy"] == runs["./u8.npz"], f"IDX, .npy and .npz trainings differ: {runs}")

# ---- 2. float features, 12 classes, a teacher from logits ------------------------------------------
K, D = 12, 20
ftr, gtr = blobs(1500, K, (D,), np.float32)
fte, gte = blobs(600, K, (D,), np.float64)
os.makedirs(f"{w}/flt")
for n, a in (("x_train", ftr), ("y_train", gtr), ("x_test", fte), ("y_test", gte)):
    np.save(f"{w}/flt/{n}.npy", a)
X = np.hstack([ftr.astype(np.float64), np.ones((len(ftr), 1))])
W = np.linalg.solve(X.T @ X + np.eye(D + 1), X.T @ np.eye(K)[gtr])
def logits(x): return np.hstack([x.astype(np.float64), np.ones((len(x), 1))]) @ W * 8
Ltr, Lte = logits(ftr), logits(fte)
np.save(f"{w}/lg_train.npy", Ltr.astype(np.float32)); np.save(f"{w}/lg_test.npy", Lte)
sel = [11, 0, 5, 7]
def rows(y, per_class, limit):
    seen, keep = {}, []
    for i, v in enumerate(y):
        if v not in sel: continue
        if per_class and seen.get(v, 0) >= per_class: continue
        if limit and len(keep) >= limit: break
        seen[v] = seen.get(v, 0) + 1; keep.append(i)
    return np.array(keep)
keep = rows(gte, 120, 150)
renum = np.array([sel.index(v) for v in gte[keep]])
acc_sel = float((Lte[keep][:, sel].argmax(1) == renum).mean())           # columns of the selected labels
np.save(f"{w}/lg4_train.npy", np.ascontiguousarray(Ltr[:, sel])); np.save(f"{w}/lg4_test.npy", np.ascontiguousarray(Lte[:, sel], dtype=np.float32))
acc_full = float((Lte.argmax(1) == gte).mean())

def prog2(lt, lte, grid=""):
    return f'''use "std/circuits"
use "std/losses"
dataset all {{ source: "./flt" }}
dataset d {{ source: "./flt"  classes: [11, 0, 5, 7]  per_class: 120  test_limit: 150 }}
teacher lin {{ data: {"all" if lt == "lg_train.npy" else "d"}  logits: "{lt}"  test_logits: "{lte}" }}
student s {{ qubits: 3  pre: dense(8)  encode: amplitude  circuit: strong(layers: 2)  measure: z  head: dense(4) }}
experiment e {{ data: d  teacher: lin  student: s  loss: kd(T: 2, alpha: 0.5)
               train {{ optimizer: adam(lr: 0.02)  epochs: 6  batch: 16  seed: 1 }}  baseline: true }}
'''
for lt, lte, name in (("lg_train.npy", "lg_test.npy", "logits12"), ("lg4_train.npy", "lg4_test.npy", "logits4")):
    r, res, _ = run(prog2(lt, lte), name)
    check(r.returncode == 0 and res, f"{name}: qkdc run failed: {r.stderr[-600:]}")
    if not res: continue
    e = res["experiments"][0]
    check(e["teacher"]["test_accuracy"] == acc_sel, f"{name}: teacher accuracy {e['teacher']['test_accuracy']} != NumPy's {acc_sel}")
    check(e["teacher"]["params"] is None, f"{name}: a logits teacher has no parameter count")
    t = res["teachers"][0]
    if name == "logits12":
        check(t["test_accuracy"] == acc_full, f"teacher on its own data set: {t['test_accuracy']} != NumPy's {acc_full}")
    check(e["classes"] == 4 and e["distilled"]["test_accuracy"] > 0.5, f"{name}: distilled student did not learn: {e['distilled']} baseline {e['baseline']['test_accuracy']}")

# ---- 3. qkdc check: the class count comes from the labels ------------------------------------------
bad_cls = prog2("lg_train.npy", "lg_test.npy").replace("classes: [11, 0, 5, 7]", "classes: [12, 0, 5, 7]")
open(f"{w}/c.qkd", "w").write(bad_cls)
r = subprocess.run([qkdc, "check", "c.qkd"], capture_output=True, text=True, cwd=w)
check(r.returncode == 1 and "0..11" in r.stderr, f"check: class 12 of 12 labels not rejected: {r.returncode} {r.stderr}")

# ---- 4. bad files ------------------------------------------------------------------------------------
def bad_case(name, mutate, expect_path, prog=None):
    d = f"{w}/bad_{name}"
    shutil.copytree(f"{w}/flt", d)
    for f in ("lg_train.npy", "lg_test.npy"): shutil.copy(f"{w}/{f}", d)
    mutate(d)
    text = (prog or prog2("lg_train.npy", "lg_test.npy")).replace('"./flt"', f'"{d}"').replace('"lg_', f'"{d}/lg_')
    r, res, out = run(text, "bad_" + name)
    named = expect_path in r.stderr
    check(r.returncode == 1 and named and not os.path.exists(os.path.join(out, "results.json")),
          f"bad {name}: exit {r.returncode}, file named: {named}, stderr: {r.stderr[-300:]}")

def truncate(p, n):
    b = open(p, "rb").read(); open(p, "wb").write(b[:n])
def patch(p, at, data):
    b = bytearray(open(p, "rb").read()); b[at:at + len(data)] = data; open(p, "wb").write(bytes(b))
bad_case("truncated", lambda d: truncate(f"{d}/x_train.npy", 5000), "x_train.npy")
bad_case("magic", lambda d: patch(f"{d}/x_test.npy", 0, b"\x93NUMPX"), "x_test.npy")
bad_case("dtype", lambda d: np.save(f"{d}/x_train.npy", ftr.astype(np.int16)), "x_train.npy")
bad_case("int_features", lambda d: np.save(f"{d}/x_train.npy", ftr.astype(np.int32)), "x_train.npy")
bad_case("fortran", lambda d: np.save(f"{d}/x_train.npy", np.asfortranarray(ftr)), "x_train.npy")
bad_case("count", lambda d: np.save(f"{d}/y_test.npy", gte[:-1]), "y_test.npy")
bad_case("label_range", lambda d: np.save(f"{d}/y_train.npy", np.where(np.arange(len(gtr)) == 17, 1000, gtr)), "y_train.npy")
bad_case("label_negative", lambda d: np.save(f"{d}/y_test.npy", np.where(np.arange(len(gte)) == 3, -1, gte)), "y_test.npy")
bad_case("float_labels", lambda d: np.save(f"{d}/y_train.npy", gtr.astype(np.float32)), "y_train.npy")
bad_case("nan", lambda d: np.save(f"{d}/x_test.npy", np.where(np.arange(fte.size).reshape(fte.shape) == 77, np.nan, fte)), "x_test.npy")
bad_case("missing", lambda d: os.remove(f"{d}/y_test.npy"), "y_test.npy")
bad_case("logit_rows", lambda d: np.save(f"{d}/lg_train.npy", Ltr[:-5].astype(np.float32)), "lg_train.npy")
bad_case("logit_cols", lambda d: np.save(f"{d}/lg_test.npy", Lte[:, :7]), "lg_test.npy")
bad_case("logit_cols_mismatch", lambda d: np.save(f"{d}/lg_test.npy", np.ascontiguousarray(Lte[:, sel])), "lg_test.npy")
bad_case("logit_nan", lambda d: np.save(f"{d}/lg_train.npy", np.where(np.arange(Ltr.size).reshape(Ltr.shape) == 5, np.inf, Ltr)), "lg_train.npy")
bad_case("logit_int", lambda d: np.save(f"{d}/lg_test.npy", Lte.astype(np.int64)), "lg_test.npy")
print("arrays.sh:", "ok" if fails == 0 else f"{fails} failure(s)")
sys.exit(1 if fails else 0)
PY
