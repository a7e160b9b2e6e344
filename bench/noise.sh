#!/bin/sh
# noise.sh — throughput of the exact density-matrix engines (dm, the reference; dmk, the fast one) on the noisy workload W(n, L, B) with depolarizing(p) after every
# gate (forward + gradient), next to the plain PyTorch density-matrix peer bench/ref_dm_torch.py
# on the same data, with the engines' and the peer's outputs and gradients checked against each
# other: one JSON object per (engine, n, L, B, threads) line on stdout (see bench/noise_bench.c
# for the fields). Run from anywhere. Uses $QKD_BUILD if set, else configures and builds build/
# in Release ($QKD_JOBS build jobs, default 2). Arguments (optional) are passed to noise_bench:
# N L B THREADS P for one row. Exits 0 whether or not a check fails (each row's "ok" says);
# progress and diagnostics go to stderr.
cd "$(dirname "$0")/.." || exit 0
BUILD=${QKD_BUILD:-build}
# configure build/ (or an unconfigured $QKD_BUILD) in Release; always bring noise_bench up to date
if [ -z "$QKD_BUILD" ] || [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || { echo "noise.sh: configure failed" >&2; exit 0; }
fi
cmake --build "$BUILD" -j"${QKD_JOBS:-2}" --target noise_bench >&2 || { echo "noise.sh: build failed" >&2; exit 0; }
# the peer needs Debian's torch (python3-torch, which brings numpy) under /usr/bin/python3
if ! /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1; then
  apt-get install -y python3-torch >&2 2>&1 || echo "noise.sh: python3-torch unavailable; peer fields null" >&2
fi
export QKD_NOISE_PEER="${QKD_NOISE_PEER:-$(pwd)/bench/ref_dm_torch.py}"
"$BUILD/bench/noise_bench" "$@"
exit 0
