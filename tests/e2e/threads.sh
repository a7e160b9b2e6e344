#!/usr/bin/env bash
# tests/e2e/threads.sh QKDC — same seed, same bits on 1, 2 and 3 threads (tests/e2e/threads.qkd):
# the teacher's and the students' weights files are byte-identical and results.json's accuracies
# and losses equal, whatever --threads says (batch slices do not follow the thread count).
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in 1 2 3; do
  mkdir -p "$work/t$t"
  cp "$here/threads.qkd" "$work/t$t/"
  (cd "$work/t$t" && "$qkdc" run threads.qkd --out run --threads "$t" 2>run.log) || { cat "$work/t$t/run.log"; fail "--threads $t"; }
done
for t in 2 3; do
  for f in e.distilled.qkw e.baseline.qkw; do
    cmp "$work/t1/run/$f" "$work/t$t/run/$f" || fail "$f differs between 1 and $t threads"
  done
  /usr/bin/python3 - "$work/t1/run/results.json" "$work/t$t/run/results.json" <<'PY' || fail "results.json differs between 1 and $t threads"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
strip = lambda r: [(e["teacher"], e["distilled"]["test_accuracy_per_epoch"], e["distilled"]["train_loss"],
                    e["baseline"]["test_accuracy_per_epoch"], e["baseline"]["train_loss"]) for e in r["experiments"]]
ta = [(t["test_accuracy_per_epoch"], t["params"]) for t in a["teachers"]]
tb = [(t["test_accuracy_per_epoch"], t["params"]) for t in b["teachers"]]
sys.exit(0 if strip(a) == strip(b) and ta == tb else 1)
PY
done
echo "threads: 1, 2 and 3 threads give the same bits"
