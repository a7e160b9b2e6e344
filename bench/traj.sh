#!/bin/sh
# traj.sh — throughput of Monte-Carlo trajectories (runtime/traj.c) on the JIT against the
# noiseless JIT kernel on the same circuit, batch and threads, in the same run, on the noisy
# workload W(n, L, B) of bench/noise.sh, with a statistical check against the exact dmk engine:
# one JSON object per row on stdout (see bench/traj_bench.c for the fields). Run from anywhere.
# Uses $QKD_BUILD if set, else configures and builds build/ in Release ($QKD_JOBS build jobs,
# default 2). Arguments (optional) are passed to traj_bench: N L B THREADS P T for one row.
# Exits 0 whether or not a check fails (each row's "ok" says); progress goes to stderr.
cd "$(dirname "$0")/.." || exit 0
BUILD=${QKD_BUILD:-build}
if [ -z "$QKD_BUILD" ] || [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || { echo "traj.sh: configure failed" >&2; exit 0; }
fi
cmake --build "$BUILD" -j"${QKD_JOBS:-2}" --target traj_bench >&2 || { echo "traj.sh: build failed" >&2; exit 0; }
"$BUILD/bench/traj_bench" "$@"
exit 0
