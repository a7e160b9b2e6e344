#!/usr/bin/env bash
# bench/e2e.sh — the whole 8-qubit MNIST experiment (examples/mnist_8q.qkd: LeNet-5 teacher 3
# epochs, dense(256) -> amplitude -> strong(layers: 4) -> <Z> -> dense(10), KD T = 4, alpha = 0.7,
# Adam 0.005, batch 64, 5 epochs, all of MNIST) through `qkdc run` (cold: no teacher cache) and
# through the PyTorch peer ref_kd_torch.py with the same recipe, in the same run; plus the
# trainer's samples/s on bench/w8.qkd (W(8,10,1000) as a program).
# Stdout: one JSON line. Exit 0 whatever the figures. Uses $QKD_BUILD if set, else builds build/.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${QKD_BUILD:-build}
if [ -z "${QKD_BUILD:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1 && cmake --build build -j"$(nproc)" >/dev/null 2>&1
fi
peer_dir=${QKD_PEER_DIR:-../shared/bench}
threads=${QKD_THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

json() { sed -n "s/.*\"$2\": *\([^,}]*\).*/\1/p" "$1" | head -n "${3:-1}" | tail -n 1; }

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
exit 0
