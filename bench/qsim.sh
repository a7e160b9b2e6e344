#!/bin/sh
# qsim.sh — throughput of the JIT'd circuit kernels on W(n, L, B) (forward + gradient) next to
# the PyTorch peer, one JSON object per line on stdout (see bench/qsim_bench.c for the fields).
# Run from the repository root. Uses $QKD_BUILD if set, else configures and builds build/ in
# Release. Arguments (optional) are passed to qsim_bench: N L B f64|f32 THREADS for one row.
# Exits 0 whether or not any target is met; progress and diagnostics go to stderr.
cd "$(dirname "$0")/.." || exit 0
BUILD=${QKD_BUILD:-build}
# configure build/ (or an unconfigured $QKD_BUILD) in Release; always bring qsim_bench up to date
if [ -z "$QKD_BUILD" ] || [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || { echo "qsim.sh: configure failed" >&2; exit 0; }
fi
cmake --build "$BUILD" -j2 --target qsim_bench >&2 || { echo "qsim.sh: build failed" >&2; exit 0; }
# the peer needs Debian's torch (python3-torch) under /usr/bin/python3
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  apt-get install -y python3-torch >&2 2>&1 || echo "qsim.sh: python3-torch unavailable; peer fields null" >&2
fi
export QKD_PEER_DIR="${QKD_PEER_DIR:-../shared/bench}"
"$BUILD/bench/qsim_bench" "$@"
exit 0
