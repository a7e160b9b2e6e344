#!/usr/bin/env bash
# scripts/test.sh — the test command: builds (if needed) and runs the whole suite.
#   1. Release build (warnings are errors): every CTest test, the full kernel sweep.
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build: every CTest test, smaller sweeps.
#   3. libFuzzer on the front end for QKD_FUZZ_SECONDS (default 60), corpus from tests/.
# Set QKD_QUICK=1 to run only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
if ! command -v cmake >/dev/null || ! command -v bison >/dev/null || ! [ -d /usr/lib/llvm-19 ]; then
  bash scripts/setup.sh
fi

# What only the tests need: a real Slurm (tests/slurm) started by the tests themselves, NumPy
# (tests/interop: the independent side of the .npy/.npz tests) and Node.js with npm's
# quantum-circuit (tests/interop/qasm.sh: the independent simulator of the OpenQASM exports).
test_need=(slurmctld slurmd slurm-client munge python3 python3-numpy)
test_missing=()
for p in "${test_need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || test_missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || test_missing+=(nodejs npm)
if [ ${#test_missing[@]} -gt 0 ]; then
  echo "test: installing ${test_missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${test_missing[@]}" >/dev/null
fi

# quantum-circuit, pinned by tests/interop/node/package-lock.json, into tests/interop/node/node_modules
if [ ! -d tests/interop/node/node_modules/quantum-circuit ]; then
  echo "test: installing npm's quantum-circuit into tests/interop/node" >&2
  npm ci --prefix tests/interop/node --no-audit --no-fund --silent
fi
export QKD_TEST_SH=1 # tests that need what this script installs fail, not skip, without it

echo "== release build and tests" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQKD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
[ "${QKD_QUICK:-0}" = 1 ] && exit 0

echo "== sanitizer build (ASan + UBSan) and tests" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQKD_SANITIZE=ON -DQKD_FULL_SWEEP=OFF -DQKD_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j"$jobs")

echo "== fuzzing the front end for ${QKD_FUZZ_SECONDS:-60} s" >&2
CC=clang cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DQKD_SANITIZE=ON \
  -DQKD_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target qkd_fuzz_front
corpus=build-fuzz/corpus
mkdir -p "$corpus"
cp tests/check/*.qkd examples/*.qkd stdlib/*.qkd "$corpus"/
build-fuzz/compiler/qkd_fuzz_front "$corpus" -max_total_time="${QKD_FUZZ_SECONDS:-60}" -max_len=65536 \
  -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=build-fuzz/ 2>&1 | tail -n 12
echo "fuzz: 1 passed, 0 failed"
