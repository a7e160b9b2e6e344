#!/usr/bin/env bash
# tests/slurm/slurm.sh QKDC — grids through a real Slurm (Debian's slurm-wlm and munge), started
# here on this machine alone (tests/slurm/cluster.sh):
#  1. `qkdc slurm --submit` on a 6-cell grid: teachers, a 3-task array, the report; the merged
#     results equal a local `qkdc run` of the same grid (identical accuracies);
#  2. scancel one array task in the middle of a cell, submit cells.sbatch again: only the
#     unfinished cells run, the cancelled cell resumes from its checkpoint, and the results
#     equal the local run's.
# Fails with the reason when Slurm cannot start. Waits are bounded.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
prog="$here/grid6.qkd"
work=$(mktemp -d /tmp/qkd-slurm.XXXXXX)
source "$here/cluster.sh"
trap 'qkd_cluster_stop; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/run*/slurm/*.out; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 5 "$f" >&2; }; done; exit 1; }
py=/usr/bin/python3

"$qkdc" run "$prog" --out "$work/local" --threads 1 2>"$work/local.log" || { cat "$work/local.log"; fail "local run"; }
qkd_cluster_start "$work/cluster" || exit 1

wait_jobs() { # JOBID… : until none is queued or running (at most 300 s)
  for _ in $(seq 1 600); do
    [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  fail "jobs $* still running after 300 s: $(squeue -h 2>&1 | head -n 5)"
}
same_as_local() { # DIR
  $py - "$work/local" "$1" <<'PY'
import json, sys
acc = lambda d: {e["cell"]: (e["distilled"]["test_accuracy_per_epoch"], e["baseline"]["test_accuracy_per_epoch"])
                 for e in json.load(open(d + "/results.json"))["experiments"] if "cell" in e}
a, b = acc(sys.argv[1]), acc(sys.argv[2])
assert len(a) == 6 and a == b, sorted(set(a) ^ set(b)) or [k for k in a if a[k] != b[k]]
g = json.load(open(sys.argv[2] + "/results.json"))["grids"][0]
assert g["missing"] == [] and all(r["n"] == 3 for r in g["rows"]), g
PY
}

# 1. the whole grid through Slurm
"$qkdc" slurm "$prog" --out "$work/run1" --tasks 3 --cpus 1 --submit >"$work/submit1.txt" 2>&1 \
  || { cat "$work/submit1.txt"; fail "qkdc slurm --submit"; }
ids=$(awk '{print $2}' "$work/submit1.txt" | xargs)
[ "$(echo $ids | wc -w)" = 3 ] || fail "expected three job ids, got: $(cat "$work/submit1.txt")"
wait_jobs $ids
[ -s "$work/run1/results.md" ] || fail "the report job wrote no results.md"
same_as_local "$work/run1" || fail "Slurm results differ from the local run"

# 2. cancel one array task in the middle of a cell, then submit the cells again
"$qkdc" slurm "$prog" --out "$work/run2" --tasks 2 --cpus 1 --submit >"$work/submit2.txt" 2>&1 \
  || { cat "$work/submit2.txt"; fail "second submit"; }
read -r tid cid rid < <(awk '{print $2}' "$work/submit2.txt" | xargs)
first=$("$qkdc" cells "$prog" | sed -n 2p) # task 1 of 2 runs cells 1-3: catch it in its second cell
for _ in $(seq 1 1200); do
  [ -s "$work/run2/cells/$first.distilled.ckpt" ] && break
  [ -z "$(squeue -h -j "$tid,$cid" 2>/dev/null)" ] && break
  sleep 0.05
done
[ -s "$work/run2/cells/$first.distilled.ckpt" ] || fail "no checkpoint of '$first' appeared"
scancel "${cid}_1"
wait_jobs "$tid" "$cid" "$rid"
done_before=$(find "$work/run2/cells" -name '*.json' | wc -l)
[ "$done_before" -lt 6 ] || fail "the cancelled task finished all its cells anyway"
[ -s "$work/run2/cells/$first.distilled.ckpt" ] || fail "the cancelled cell left no checkpoint"
again=$(sbatch --parsable "$work/run2/slurm/cells.sbatch" | cut -d';' -f1)
wait_jobs "$again"
ran=$(cat "$work/run2/slurm/cells-${again}"_*.out | grep -c '^\[.*\] six/.* distilled: test accuracy' || true)
[ "$ran" = $((6 - done_before)) ] || fail "the resubmitted tasks trained $ran cells, expected $((6 - done_before))"
grep -q "resuming '\[[0-9]/[0-9]\] $first' distilled from epoch" "$work/run2/slurm/cells-${again}"_*.out \
  || fail "the cancelled cell did not resume from its checkpoint"
"$qkdc" report "$work/run2" 2>/dev/null || fail "report after the resubmission"
same_as_local "$work/run2" || fail "results after cancel and resubmit differ from the local run"
echo "slurm: 1 passed, 0 failed"
