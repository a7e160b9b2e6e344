#!/usr/bin/env bash
# bench/data.sh — reading MNIST (60,000 + 10,000 images of 28x28 bytes) as the IDX files and as
# the same images written by NumPy: a directory of .npy files (uint8), one .npz (stored and
# deflated), and float32 features (N, 784). One JSON line per source from build/bench/data_bench
# (median of $QKD_BENCH_REPEATS loads, default 7), then one line with the ratios to IDX.
# The files are read from the page cache after the first load (every source the same way).
# Needs build/ (or $QKD_BUILD) and python3-numpy; MNIST on the data path (scripts/setup.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD=${QKD_BUILD:-build}
[ -x "$BUILD/bench/data_bench" ] || cmake --build "$BUILD" -j2 --target data_bench >/dev/null || exit 1
R=${QKD_BENCH_REPEATS:-7}
idx=""
for r in ${QKD_DATA:+${QKD_DATA//:/ }} ./data /usr/share/datasets; do [ -e "$r/mnist/train-labels-idx1-ubyte" ] || [ -e "$r/mnist/train-labels-idx1-ubyte.gz" ] && { idx=$r/mnist; break; }; done
[ -n "$idx" ] || { echo "data.sh: MNIST not found (run scripts/setup.sh)" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
/usr/bin/python3 - "$idx" "$w" <<'PY' || exit 1
import gzip, os, sys
import numpy as np
d, w = sys.argv[1], sys.argv[2]
def idx(stem):
    p = os.path.join(d, stem)
    b = open(p, "rb").read() if os.path.exists(p) else gzip.open(p + ".gz").read()
    nd = b[3]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape([int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)])
a = {"x_train": idx("train-images-idx3-ubyte"), "y_train": idx("train-labels-idx1-ubyte").astype(np.int64),
     "x_test": idx("t10k-images-idx3-ubyte"), "y_test": idx("t10k-labels-idx1-ubyte").astype(np.int64)}
os.makedirs(f"{w}/npy"); os.makedirs(f"{w}/f32")
for k, v in a.items():
    np.save(f"{w}/npy/{k}.npy", v)
    np.save(f"{w}/f32/{k}.npy", (v.reshape(len(v), -1) / np.float32(255)).astype(np.float32) if k[0] == "x" else v)
np.savez(f"{w}/stored.npz", **a)
np.savez_compressed(f"{w}/deflated.npz", **a)
PY
declare -A med
for s in "$idx" "$w/npy" "$w/stored.npz" "$w/deflated.npz" "$w/f32"; do
  line=$("$BUILD/bench/data_bench" "$s" "$R") || exit 1
  echo "${line/$w\//}"
  med[$s]=$(sed 's/.*"median_s": \([0-9.]*\).*/\1/' <<<"$line")
done
r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
printf '{"ratio_to_idx": {"npy_uint8": %s, "npz_stored": %s, "npz_deflated": %s, "npy_float32": %s}, "idx": "%s", "load_avg_1m": %s}\n' \
  "$(r "${med[$w/npy]}" "${med[$idx]}")" "$(r "${med[$w/stored.npz]}" "${med[$idx]}")" \
  "$(r "${med[$w/deflated.npz]}" "${med[$idx]}")" "$(r "${med[$w/f32]}" "${med[$idx]}")" "$idx" "$(cut -d' ' -f1 /proc/loadavg)"
