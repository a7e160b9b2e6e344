#!/usr/bin/env bash
# tests/e2e/e2e.sh QKDC — end to end on synthetic data:
#  1. `qkdc run` and an executable from `qkdc build` give identical accuracy fields;
#  2. the executable has no LLVM library;
#  3. Ctrl-C (SIGINT) during the second experiment exits 130 and leaves valid outputs: the
#     first experiment's results complete, no temporary files.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
fields() { grep -E '"(test_accuracy|test_accuracy_per_epoch|train_loss|validation_accuracy_per_epoch)"' "$1"; }

"$qkdc" run "$here/synthetic.qkd" --out "$work/run" --set long.train.epochs=1 --threads 2 2>"$work/run.log" \
  || { cat "$work/run.log"; fail "qkdc run"; }
"$qkdc" build "$here/synthetic.qkd" -o "$work/exe" 2>"$work/build.log" || { cat "$work/build.log"; fail "qkdc build"; }
if ldd "$work/exe" | grep -qi llvm; then fail "the built executable links LLVM"; fi
"$work/exe" --out "$work/exe-run" --set long.train.epochs=1 --threads 2 2>"$work/exe.log" \
  || { cat "$work/exe.log"; fail "built executable"; }
[ "$(fields "$work/run/results.json" | wc -l)" -ge 8 ] || fail "results.json lacks accuracy fields"
diff <(fields "$work/run/results.json") <(fields "$work/exe-run/results.json") || fail "run and build differ"
for f in curves.csv curves.svg quick.distilled.qkw quick.baseline.qkw long.distilled.qkw; do
  [ -s "$work/run/$f" ] || fail "missing $f"
done
grep -q '"validation_accuracy_per_epoch"' "$work/run/results.json" || fail "no validation accuracies"

# interrupt the long experiment
"$qkdc" run "$here/synthetic.qkd" --out "$work/int" --threads 1 2>"$work/int.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q '"experiment": "quick"' "$work/int/results.json" 2>/dev/null && break
  sleep 0.1
done
sleep 0.5
kill -INT $pid
set +e
wait $pid
code=$?
set -e
[ "$code" = 130 ] || { cat "$work/int.log"; fail "exit code $code after SIGINT, expected 130"; }
grep -q '"experiment": "quick"' "$work/int/results.json" || fail "finished experiment missing after SIGINT"
tail -c 3 "$work/int/results.json" | grep -q '}' || fail "results.json torn"
if ls "$work/int" | grep -q tmp; then fail "temporary files left: $(ls "$work/int")"; fi
echo "e2e: 1 passed, 0 failed"
