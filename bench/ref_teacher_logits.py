#!/usr/bin/python3
"""bench/ref_teacher_logits.py — the reference's LeNet-5 teachers as logits files, so qkd students
can distil from exactly the teachers ref_kd_torch.py's students distil from (bench/e2e_swap.sh).

For each --teacher-seed S: trains ../shared/bench/ref_kd_torch.py's LeNet5 with its own train()
(3 epochs, Adam 1e-3, batch 128, seed S — what `ref_kd_torch.py --teacher-seed S` does) and writes
OUT/ref_teacher_S.train.npy (60000, 10) and OUT/ref_teacher_S.test.npy (10000, 10), float32, row i
= image i of the split in file order; prints one JSON line per teacher with its test accuracy.
Usage: /usr/bin/python3 bench/ref_teacher_logits.py --dataset fashion-mnist --seeds 1,2,3 --out DIR
       [--peer ../shared/bench] [--data ROOT]
"""
import argparse, importlib.util, json, os, sys, time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--dataset", default="fashion-mnist")
ap.add_argument("--seeds", default="1,2,3,4,5")
ap.add_argument("--out", required=True)
ap.add_argument("--peer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/bench"))
ap.add_argument("--data", default=None, help="root holding DATASET/ (default: ref_kd_torch.py's)")
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
spec = importlib.util.spec_from_file_location("ref_kd_torch", os.path.join(a.peer, "ref_kd_torch.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
torch.set_num_threads(a.threads)
root = a.data or "/usr/share/datasets"
xtr, ytr, xte, yte = ref.load(root, a.dataset)
os.makedirs(a.out, exist_ok=True)
for s in [int(v) for v in a.seeds.split(",")]:
    t0 = time.time()
    torch.manual_seed(s)
    teacher = ref.LeNet5()
    ref.train(teacher, xtr, ytr, 3, 128, 1e-3, s)
    teacher.eval()
    with torch.no_grad():
        lg = lambda X: torch.cat([teacher(X[i:i + 5000]) for i in range(0, len(X), 5000)]).numpy().astype(np.float32)
        ltr, lte = lg(xtr), lg(xte)
    np.save(f"{a.out}/ref_teacher_{s}.train.npy", ltr)
    np.save(f"{a.out}/ref_teacher_{s}.test.npy", lte)
    acc = float(ref.evaluate(teacher, xte, yte))
    print(json.dumps({"dataset": a.dataset, "teacher_seed": s, "teacher_acc": acc,
                      "logits_acc": float((lte.argmax(1) == np.asarray(yte)).mean()), "seconds": round(time.time() - t0, 1)}), flush=True)
