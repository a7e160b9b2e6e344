#!/usr/bin/env bash
# bench/scale.sh — how qkd's speed holds as the qubit count grows: W(n, 10, B) (bench/qsim_bench.c's
# workload: amplitude encoding, 10 layers of RY and RZ on every qubit then a CNOT ring,
# probabilities, forward + gradient, f64) for n = 4 … 20, three ways in one run:
#   - the kernels (qsim_bench, 1 and 2 threads), with their peak RSS;
#   - the same workload as a program through `qkdc run` (2 threads: the trainer's samples/s,
#     and trainer / kernel at the same thread count), with its peak RSS;
#   - the PyTorch peer (../shared/bench/ref_torch.py, best of 1 and 2 threads) where it fits
#     (n ≤ QKD_SCALE_PEER_MAX, default 14), and the ratio.
# Efficiency = samples/s × n × 2^n relative to n = 8 at the same thread count (gates per layer
# grow as n, the work per gate as 2^n): 1.0 means the cost grows only as the work does.
# Stdout: one JSON object per n, then a summary object. Progress on stderr. Exit 0 whatever the
# figures. Environment: QKD_SCALE_QUBITS (default "4 6 8 9 10 11 12 13 14 16 18 20"),
# QKD_SCALE_THREADS (default "1 2"), QKD_SCALE_RUN=0 skips `qkdc run`, QKD_BUILD (default:
# configure and build build/ in Release), QKD_PEER_DIR (default ../shared/bench).
# Takes about half an hour here; run it on a quiet machine (it prints the load it saw).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${QKD_BUILD:-build}
if [ -z "${QKD_BUILD:-}" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1 && cmake --build build -j2 >/dev/null 2>&1 ||
    { echo "scale.sh: build failed" >&2; exit 0; }
fi
peer_dir=${QKD_PEER_DIR:-../shared/bench}
peer_max=${QKD_SCALE_PEER_MAX:-14}
qubits=${QKD_SCALE_QUBITS:-4 6 8 9 10 11 12 13 14 16 18 20}
threads=${QKD_SCALE_THREADS:-1 2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
have_peer=0
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 && [ -f "$peer_dir/ref_torch.py" ] && have_peer=1

batch_for() { # batch per n: a tile of states stays a few hundred MB at most
  if [ "$1" -le 10 ]; then echo 1000; elif [ "$1" -le 12 ]; then echo 256
  elif [ "$1" -le 16 ]; then echo 64; elif [ "$1" -le 18 ]; then echo 16; else echo 4; fi
}
field() { sed -n "s/.*\"$2\": *\([^,}]*\).*/\1/p" "$1" | tail -n 1; }
rss_kb() { tr -dc '0-9' <"$1"; }

for n in $qubits; do
  B=$(batch_for "$n")
  reps=7; [ "$n" -ge 16 ] && reps=5
  row="{\"qubits\": $n, \"layers\": 10, \"batch\": $B, \"precision\": \"f64\", \"load_avg_1m\": $(cut -d' ' -f1 /proc/loadavg)"
  best_kernel2=null
  for t in $threads; do
    echo "scale.sh: kernels W($n,10,$B) $t thread(s)" >&2
    QKD_BENCH_NO_PEER=1 QKD_BENCH_NO_QUICK=1 QKD_BENCH_REPS=$reps /usr/bin/time -f '%M' -o "$work/rss" \
      "$build/bench/qsim_bench" "$n" 10 "$B" f64 "$t" >"$work/k.json" 2>"$work/k.log"
    sps=$(field "$work/k.json" samples_per_s); [ -n "$sps" ] || sps=null
    row+=", \"kernel_t${t}_samples_per_s\": $sps, \"kernel_t${t}_peak_rss_kb\": $(rss_kb "$work/rss")"
    [ "$t" = 2 ] && best_kernel2=$sps
  done
  if [ "${QKD_SCALE_RUN:-1}" != 0 ]; then
    # enough batches for a few seconds of training at the kernel's speed, at least two
    ksps=${best_kernel2/null/0}
    nb=$(awk -v s="$ksps" -v b="$B" 'BEGIN { k = int(3 * s / b); if (k < 2) k = 2; if (k > 40) k = 40; print k }')
    h=$((n / 2)); w=$((n - h))
    cat >"$work/w.qkd" <<EOF
use "std/circuits"
dataset wdata { source: "synthetic" shape: [1, $((1 << h)), $((1 << w))] classes: 0..9 seed: 1 train_limit: $((nb * B)) test_limit: 10 }
student wq { qubits: $n  encode: amplitude  circuit: hea(layers: 10)  measure: probs  head: none }
experiment w_train { data: wdata  student: wq  loss: ce  train { optimizer: adam(lr: 0.01)  epochs: 2  batch: $B  seed: 1 } }
EOF
    echo "scale.sh: qkdc run, $n qubits, $nb batches of $B, 2 epochs" >&2
    rm -rf "$work/run"
    if /usr/bin/time -f '%M' -o "$work/rss" "$build/qkdc" run "$work/w.qkd" --out "$work/run" --threads 2 \
         >/dev/null 2>"$work/run.log"; then
      rs=$(field "$work/run/results.json" samples_per_s)
      row+=", \"run_t2_samples_per_s\": ${rs:-null}, \"run_t2_peak_rss_kb\": $(rss_kb "$work/rss")"
    else
      echo "scale.sh: qkdc run failed at $n qubits:" >&2; tail -3 "$work/run.log" >&2
      row+=", \"run_t2_samples_per_s\": null, \"run_t2_peak_rss_kb\": null"
    fi
  fi
  psps=null
  if [ $have_peer = 1 ] && [ "$n" -le "$peer_max" ]; then
    for t in 1 2; do
      echo "scale.sh: PyTorch peer, $n qubits, $t thread(s)" >&2
      /usr/bin/python3 "$peer_dir/ref_torch.py" --qubits "$n" --layers 10 --batch "$B" --threads "$t" --iters 5 --f64 \
        >"$work/p.json" 2>/dev/null || continue
      s=$(field "$work/p.json" samples_per_s)
      [ -n "$s" ] && psps=$(awk -v a="$psps" -v b="$s" 'BEGIN { print (a == "null" || b + 0 > a + 0) ? b : a }')
    done
  fi
  row+=", \"peer\": \"torch\", \"peer_samples_per_s\": $psps}"
  echo "$row" >>"$work/rows.jsonl"
  echo "$row"
done

# the derived figures: efficiency against n = 8, trainer / kernel, qkd / peer
python3 - "$work/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ref = {r["qubits"]: r for r in rows}.get(8)
out = []
for r in rows:
    n = r["qubits"]
    d = {"qubits": n, "batch": r["batch"]}
    for t in (1, 2):
        k = r.get(f"kernel_t{t}_samples_per_s")
        k8 = ref.get(f"kernel_t{t}_samples_per_s") if ref else None
        d[f"efficiency_t{t}"] = round(k * n * 2**n / (k8 * 8 * 2**8), 3) if k and k8 else None
    k1, k2 = r.get("kernel_t1_samples_per_s"), r.get("kernel_t2_samples_per_s")
    d["two_threads_over_one"] = round(k2 / k1, 2) if k1 and k2 else None
    rs = r.get("run_t2_samples_per_s")
    d["trainer_over_kernel"] = round(rs / k2, 2) if rs and k2 else None
    p = r.get("peer_samples_per_s")
    d["qkd_over_peer"] = round(k2 / p, 1) if k2 and p else None
    out.append(d)
print(json.dumps({"summary": "scale", "rows": out}))
PY
exit 0
