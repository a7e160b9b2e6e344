#!/usr/bin/env bash
# bench/e2e.sh — the whole 8-qubit MNIST experiment (examples/mnist_8q.qkd: LeNet-5 teacher 3
# epochs, dense(256) -> amplitude -> strong(layers: 4) -> <Z> -> dense(10), KD T = 4, alpha = 0.7,
# Adam 0.005, batch 64, 5 epochs, all of MNIST) through `qkdc run` (cold: no teacher cache) and
# through the PyTorch peer ref_kd_torch.py with the same recipe, in the same run; plus the
# trainer's samples/s on bench/w8.qkd (W(8,10,1000) as a program).
# Then (unless QKD_E2E_KD=0) the original-method cells of the v2 grid with the reference's recipe
# (bench/e2e_kd.qkd: MNIST and Fashion-MNIST x 4 and 8 qubits, LeNet-5 teacher 3 epochs), through
# `qkdc run` and through ref_kd_torch.py, QKD_E2E_SEEDS seeds each (default 5; seed S re-seeds
# teacher and student on both sides: --seed S --teacher-seed S): one more JSON line per cell with
# both sides' means and sample stds over the seeds and the time ratio (the reference's seconds
# over qkd's, teachers included on both sides). The reference takes about 20 minutes per
# 8-qubit seed here: the whole bench runs for hours; run it on a quiet machine. QKD_E2E_QUBITS
# (default "4 8") and QKD_E2E_DATASETS (default "mnist fashion-mnist") narrow it;
# QKD_E2E_MAIN=0 skips the first line (mnist_8q and w8), QKD_E2E_KD=0 the cells.
# QKD_E2E_DIR keeps the runs and resumes (below). Stdout: JSON lines. Exit 0 whatever the figures. Uses $QKD_BUILD if set, else builds build/.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${QKD_BUILD:-build}
if [ -z "${QKD_BUILD:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1 && cmake --build build -j"$(nproc)" >/dev/null 2>&1
fi
peer_dir=${QKD_PEER_DIR:-../shared/bench}
threads=${QKD_THREADS:-2}
# QKD_E2E_DIR=DIR keeps the runs there and resumes: finished qkd cells and peer seeds are not
# run again (the whole bench takes hours; run it with nohup and run it again after a stop)
if [ -n "${QKD_E2E_DIR:-}" ]; then
  work=$QKD_E2E_DIR
  mkdir -p "$work" || exit 0
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

json() { sed -n "s/.*\"$2\": *\([^,}]*\).*/\1/p" "$1" | head -n "${3:-1}" | tail -n 1; }

if [ "${QKD_E2E_MAIN:-1}" != 0 ]; then
start=$(date +%s.%N)
"$build/qkdc" run examples/mnist_8q.qkd --out "$work/run" --threads "$threads" 2>"$work/run.log"
qkd_rc=$?
end=$(date +%s.%N)
qkd_seconds=$(awk "BEGIN { print $end - $start }")
if [ $qkd_rc = 0 ]; then
  r="$work/run/results.json"
  # the distilled block comes before the baseline block in results.json
  qkd_distilled=$(grep -A2 '"distilled": {' "$r" | sed -n 's/.*"test_accuracy": *\([0-9.e-]*\).*/\1/p' | head -n1)
  qkd_baseline=$(grep -A2 '"baseline": {' "$r" | sed -n 's/.*"test_accuracy": *\([0-9.e-]*\).*/\1/p' | head -n1)
else
  qkd_distilled=null; qkd_baseline=null
fi

"$build/qkdc" run bench/w8.qkd --out "$work/w8" --threads "$threads" 2>/dev/null
w8=$(json "$work/w8/results.json" samples_per_s)
[ -n "$w8" ] || w8=null

peer_seconds=null; peer_distilled=null; peer_baseline=null; ratio=null
if [ -x /usr/bin/python3 ] && [ -f "$peer_dir/ref_kd_torch.py" ]; then
  pstart=$(date +%s.%N)
  if /usr/bin/python3 "$peer_dir/ref_kd_torch.py" --data data --qubits 8 --layers 4 --teacher-epochs 3 --epochs 5 \
       --batch 64 --lr 0.005 --T 4 --alpha 0.7 --threads "$threads" >"$work/peer.json" 2>"$work/peer.log"; then
    pend=$(date +%s.%N)
    peer_seconds=$(awk "BEGIN { printf \"%.1f\", $pend - $pstart }")
    peer_distilled=$(json "$work/peer.json" distilled_acc)
    peer_baseline=$(json "$work/peer.json" baseline_acc)
    ratio=$(awk "BEGIN { printf \"%.2f\", $peer_seconds / $qkd_seconds }")
  fi
fi
printf '{"experiment": "mnist_8q", "qubits": 8, "epochs": 5, "threads": %s, "qkd_seconds": %.1f, "qkd_distilled": %s, "qkd_baseline": %s, "peer": "torch", "peer_seconds": %s, "peer_distilled": %s, "peer_baseline": %s, "ratio": %s, "qkd_w8_samples_per_s": %s}\n' \
  "$threads" "$qkd_seconds" "${qkd_distilled:-null}" "${qkd_baseline:-null}" "$peer_seconds" "${peer_distilled:-null}" \
  "${peer_baseline:-null}" "$ratio" "$w8"
fi

[ "${QKD_E2E_KD:-1}" = 0 ] && exit 0
seeds=${QKD_E2E_SEEDS:-5}
seed_list=$(seq -s, 1 "$seeds")
qubit_list=${QKD_E2E_QUBITS:-4 8}
dataset_list=${QKD_E2E_DATASETS:-mnist fashion-mnist}
# the program with its axes narrowed to the lists asked for
data_vals=""; teacher_vals=""; name_vals=""
for d in $dataset_list; do
  case $d in mnist) v=mnist; t=lenet_m ;; fashion-mnist) v=fmnist; t=lenet_f ;; *) echo "e2e: unknown data set $d" >&2; exit 0 ;; esac
  data_vals+="${data_vals:+, }$v"; teacher_vals+="${teacher_vals:+, }$t"; name_vals+="${name_vals:+, }$d"
done
sed -e "s/ref.data: \[mnist, fmnist\]  ref.teacher: \[lenet_m, lenet_f\]  names: \[mnist, fashion-mnist\]/ref.data: [$data_vals]  ref.teacher: [$teacher_vals]  names: [$name_vals]/" \
    -e "s/qnn.qubits: \[4, 8\]/qnn.qubits: [$(echo $qubit_list | sed 's/ /, /g')]/" bench/e2e_kd.qkd >bench/.e2e_kd.$$.qkd
"$build/qkdc" run bench/.e2e_kd.$$.qkd --out "$work/kd" --threads "$threads" --set "e2e.seeds=[$seed_list]" 2>"$work/kd.log" ||
  { echo '{"experiment": "e2e_kd", "error": "qkdc run failed"}'; tail -5 "$work/kd.log" >&2; rm -f bench/.e2e_kd.$$.qkd; exit 0; }
have_peer=0
[ -x /usr/bin/python3 ] && [ -f "$peer_dir/ref_kd_torch.py" ] && have_peer=1
rm -f bench/.e2e_kd.$$.qkd
for ds in $dataset_list; do
  for q in $qubit_list; do
    for s in $(seq 1 "$seeds"); do
      [ $have_peer = 1 ] || continue
      [ -f "$work/peer-$ds-$q-$s.json" ] && [ -f "$work/peer-$ds-$q-$s.s" ] && continue # done before a stop
      pstart=$(date +%s.%N)
      root=data; [ -d "data/$ds" ] || root=/usr/share/datasets # Debian's dataset-fashion-mnist
      /usr/bin/python3 "$peer_dir/ref_kd_torch.py" --data "$root" --dataset "$ds" --qubits "$q" --layers 4 --teacher-epochs 3 \
        --epochs 5 --batch 64 --lr 0.005 --T 4 --alpha 0.7 --threads "$threads" --seed "$s" --teacher-seed "$s" \
        >"$work/peer-$ds-$q-$s.json" 2>>"$work/peer.log" || rm -f "$work/peer-$ds-$q-$s.json"
      pend=$(date +%s.%N)
      [ -f "$work/peer-$ds-$q-$s.json" ] && echo "$pend $pstart" | awk '{ print $1 - $2 }' >"$work/peer-$ds-$q-$s.s"
    done
    /usr/bin/python3 - "$work" "$ds" "$q" "$seeds" "$threads" <<'PY'
import json, pathlib, statistics as st, sys
w, ds, q, n, threads = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def agg(xs):
    return (round(st.mean(xs), 4), round(st.stdev(xs), 4) if len(xs) > 1 else None) if xs else (None, None)
cells = [json.loads(p.read_text()) for p in (w / "kd/cells/e2e").glob(f"dataset={ds}/qubits={q}/seed=*.json")]
qd, qb = [c["distilled"]["test_accuracy"] for c in cells], [c["baseline"]["test_accuracy"] for c in cells]
qt, qs = [c["teacher"]["test_accuracy"] for c in cells], sum(c["seconds"]["total"] for c in cells)
peers = [json.loads(p.read_text()) for p in sorted(w.glob(f"peer-{ds}-{q}-*.json"))]
ps = sum(float(p.read_text()) for p in w.glob(f"peer-{ds}-{q}-*.s"))
pd, pb, pt = [p["distilled_acc"] for p in peers], [p["baseline_acc"] for p in peers], [p["teacher_acc"] for p in peers]
out = {"experiment": "e2e_kd", "dataset": ds, "qubits": q, "seeds": n, "threads": threads, "qkd_seeds_done": len(cells),
       "peer_seeds_done": len(peers)}
for name, xs in (("qkd_distilled", qd), ("qkd_baseline", qb), ("qkd_teacher", qt),
                 ("peer_distilled", pd), ("peer_baseline", pb), ("peer_teacher", pt)):
    out[name + "_mean"], out[name + "_std"] = agg(xs)
out["qkd_seconds"], out["peer_seconds"] = round(qs, 1), round(ps, 1) if peers else None
out["ratio"] = round(ps / qs, 2) if peers and qs > 0 else None
print(json.dumps(out))
PY
  done
done
exit 0
