#!/usr/bin/env bash
# tests/e2e/resume.sh QKDC — SIGTERM and checkpoints, without Slurm (tests/e2e/resume.qkd):
#  1. SIGTERM in the middle of an epoch exits 143 and leaves a checkpoint of the finished epochs;
#  2. running again says "resuming 'slow' … from epoch K" and finishes bit-identical to an
#     uninterrupted run (accuracies, losses, weights files) — for a plain experiment and for a
#     grid cell, interrupted at several points;
#  3. no checkpoint is left once the results are written.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
prog="$here/resume.qkd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3

"$qkdc" run "$prog" --out "$work/ref" --threads 1 2>"$work/ref.log" || { cat "$work/ref.log"; fail "uninterrupted run"; }

# interrupt when the N-th checkpoint of a run has been written, then resume; repeat
interrupt() { # DIR CKPT_GLOB WAIT_EPOCHS
  local dir=$1 glob=$2 n=$3
  "$qkdc" run "$prog" --out "$dir" --threads 1 2>>"$dir.log" &
  local pid=$!
  for _ in $(seq 1 2000); do
    if compgen -G "$dir/$glob" >/dev/null; then break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  sleep 0.00$((RANDOM % 9 + 1)) # 1–9 ms: the experiment trains its 30 epochs in about 0.1 s
  kill -TERM $pid 2>/dev/null || true
  set +e
  wait $pid
  local code=$?
  set -e
  echo $code
}
mkdir -p "$work/int"
code=$(interrupt "$work/int" "slow.distilled.ckpt" 1)
[ "$code" = 143 ] || fail "SIGTERM during the plain experiment exited $code, not 143"
[ -s "$work/int/slow.distilled.ckpt" ] || fail "no checkpoint after SIGTERM"
code=$(interrupt "$work/int" "slow.baseline.ckpt" 1)
[ "$code" = 143 ] || [ "$code" = 0 ] || fail "second interruption exited $code"
grep -q "resuming 'slow' distilled from epoch [1-9]" "$work/int.log" || { cat "$work/int.log"; fail "no resume message"; }
# interrupt inside the grid's first cell
code=$(interrupt "$work/int" "cells/g/batch=1/seed=3.distilled.ckpt" 1)
[ "$code" = 143 ] || [ "$code" = 0 ] || fail "interruption in a cell exited $code"
"$qkdc" run "$prog" --out "$work/int" --threads 1 2>>"$work/int.log" || { cat "$work/int.log"; fail "final resume"; }
grep -q "resuming '\[1/2\] g/batch=1/seed=3' distilled from epoch" "$work/int.log" || fail "no resume message for the cell"

$py - "$work" <<'PY' || fail "resumed results differ from the uninterrupted run"
import json, sys, glob, os
w = sys.argv[1]
def runs(d):
    j = json.load(open(d + "/results.json"))
    out = {}
    for e in j["experiments"]:
        for k in ("distilled", "baseline", "control"):
            if e[k]:
                out[(e.get("cell", e["experiment"]), k)] = (e[k]["test_accuracy_per_epoch"], e[k]["train_loss"],
                                                            e[k].get("validation_accuracy_per_epoch"))
    return out
a, b = runs(w + "/ref"), runs(w + "/int")
assert len(a) == 7 and a == b, [k for k in a if a.get(k) != b.get(k)]
for f in glob.glob(w + "/ref/**/*.qkw", recursive=True):
    g = f.replace("/ref/", "/int/")
    assert open(f, "rb").read() == open(g, "rb").read(), f
assert not glob.glob(w + "/int/**/*.ckpt", recursive=True), "checkpoints left"
PY
echo "resume: 1 passed, 0 failed"
