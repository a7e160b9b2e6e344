#!/usr/bin/env bash
# bench/e2e_swap.sh — the teacher held fixed across the two implementations (issue R): qkd
# students distil from the reference's own LeNet-5 teachers, given to qkd as logits (a teacher
# from logits, docs/language.md), so what remains between qkd and bench/ref_kd_torch.py is the
# student side alone. For each seed S (QKD_SWAP_SEEDS, default 1..5):
#   bench/ref_teacher_logits.py trains the teacher `ref_kd_torch.py --teacher-seed S` trains and
#   writes its logits; qkdc runs the original-method student (bench/e2e_kd.qkd's recipe, 4 qubits,
#   seed S) distilled from it, with its baseline.
# Prints one JSON line per seed and a summary line (means and sample stds). Compare with
# `ref_kd_torch.py --seed S --teacher-seed S` (bench/e2e.sh), whose students see the same teachers.
# Env: QKD_SWAP_DATASET (fashion-mnist), QKD_SWAP_QUBITS (4), QKD_SWAP_DIR (a temp dir; kept when set),
# QKD_SWAP_REUSE=1 (with QKD_SWAP_DIR: the teachers' logits and teachers.jsonl already there).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ds=${QKD_SWAP_DATASET:-fashion-mnist}
n=${QKD_SWAP_QUBITS:-4}
seeds=${QKD_SWAP_SEEDS:-1,2,3,4,5}
w=${QKD_SWAP_DIR:-$(mktemp -d)}
[ -n "${QKD_SWAP_DIR:-}" ] || trap 'rm -rf "$w"' EXIT
mkdir -p "$w"
root=/usr/share/datasets
[ "$ds" = mnist ] && root=$(cd data && pwd)
if [ "${QKD_SWAP_REUSE:-0}" != 1 ] || [ ! -s "$w/teachers.jsonl" ]; then
  /usr/bin/python3 bench/ref_teacher_logits.py --dataset "$ds" --seeds "$seeds" --out "$w" --data "$root" >"$w/teachers.jsonl" || exit 1
fi
{
  echo 'use "std/circuits"'; echo 'use "std/losses"'
  echo "dataset d { source: \"$ds\" }"
  for s in ${seeds//,/ }; do
    echo "teacher ref_$s { data: d  logits: \"ref_teacher_$s.train.npy\"  test_logits: \"ref_teacher_$s.test.npy\" }"
  done
  cat <<QKD
student qnn { qubits: $n  pre: dense(2^qubits)  encode: amplitude  circuit: strong(layers: 4)  measure: z  head: dense(10) }
QKD
  for s in ${seeds//,/ }; do
    echo "experiment swap_$s { data: d  teacher: ref_$s  student: qnn  loss: kd(T: 4, alpha: 0.7)"
    echo "  train { optimizer: adam(lr: 0.005)  epochs: 5  batch: 64  seed: $s }  baseline: true }"
  done
} >"$w/swap.qkd"
start=$(date +%s)
./build/qkdc run "$w/swap.qkd" --out "$w/run" --threads 2 >"$w/run.log" 2>&1 || { tail -20 "$w/run.log" >&2; exit 1; }
/usr/bin/python3 - "$w" "$ds" "$n" $(( $(date +%s) - start )) <<'PY'
import json, pathlib, statistics as st, sys
w, ds, n, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
teach = {t["teacher_seed"]: t for t in map(json.loads, open(f"{w}/teachers.jsonl"))}
rows = []
for e in json.load(open(f"{w}/run/results.json"))["experiments"]:
    s = int(e["experiment"].split("_")[1])
    r = {"dataset": ds, "qubits": n, "seed": s, "ref_teacher_acc": teach[s]["teacher_acc"],
         "qkd_teacher_acc_from_logits": e["teacher"]["test_accuracy"],
         "qkd_distilled": e["distilled"]["test_accuracy"], "qkd_baseline": e["baseline"]["test_accuracy"]}
    rows.append(r)
    print(json.dumps(r))
def ms(k):
    v = [r[k] for r in rows]
    return [round(st.mean(v), 4), round(st.stdev(v), 4) if len(v) > 1 else None]
print(json.dumps({"summary": "qkd students on the reference's teachers", "dataset": ds, "qubits": n, "seeds": len(rows),
                  "ref_teacher_acc": ms("ref_teacher_acc"), "qkd_distilled": ms("qkd_distilled"),
                  "qkd_baseline": ms("qkd_baseline"), "qkd_seconds": secs}))
PY
