#!/usr/bin/env bash
# scripts/reproduce.sh [RUNS] — the paper's experiments end to end (issue R, docs/results.md):
#   examples/paper_v2.qkd (the v2 grid, teacher strength, small data, teacher spread, CIFAR-10 lr) into
#   RUNS/paper_v2 and examples/paper_v1.qkd (the v1 repository's runs) into RUNS/paper_v1,
#   then `qkdc report` of each into docs/results/ and docs/results/v1/ (results.json, results.md,
#   one chart per grid),
#   with the paper's figures from examples/paper_reference.json beside ours.
# Resumable: finished cells are kept, so run it again after an interruption; QKD_CELLS=K/N runs a
# slice of each file (e.g. on several machines sharing RUNS), QKD_THREADS (default: all cores).
# QKD_ARCHIVE=1 first restores the cells kept in results/ (scripts/archive.sh) and saves the
# finished ones there at the end: a grid longer than one machine's life goes on on the next.
# Prints, and appends to RUNS/times.jsonl, one JSON line per file: its wall time in this
# invocation, the cells it finished, and the cells' own seconds summed (teachers included).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
threads=${QKD_THREADS:-$(nproc)}
[ -x build/qkdc ] || bash scripts/setup.sh >&2 || exit 1
mkdir -p "$runs" || exit 1
[ "${QKD_ARCHIVE:-0}" = 1 ] && bash scripts/archive.sh restore "$runs"
rc=0
for name in paper_v2 paper_v1; do
  before=$(find "$runs/$name/cells" -name '*.json' 2>/dev/null | wc -l)
  start=$(date +%s)
  ./build/qkdc run "examples/$name.qkd" --out "$runs/$name" --threads "$threads" ${QKD_CELLS:+--cells "$QKD_CELLS"} \
    2>>"$runs/$name.log" || rc=$?
  end=$(date +%s)
  after=$(find "$runs/$name/cells" -name '*.json' 2>/dev/null | wc -l)
  total=$(./build/qkdc cells "examples/$name.qkd" 2>/dev/null | wc -l)
  cell_s=$(python3 - "$runs/$name/cells" <<'PY'
import json, pathlib, sys
print(round(sum(json.loads(p.read_text())["seconds"]["total"] for p in pathlib.Path(sys.argv[1]).rglob("*.json")), 1))
PY
)
  line=$(printf '{"file": "examples/%s.qkd", "wall_s": %d, "cells_done": %d, "cells_total": %d, "new_cells": %d, "cells_seconds_sum": %s, "threads": %d, "load_avg_1m": %s}' \
    "$name" $((end - start)) "$after" "$total" $((after - before)) "${cell_s:-null}" "$threads" "$(cut -d' ' -f1 /proc/loadavg)")
  echo "$line"
  echo "$line" >>"$runs/times.jsonl"
done
[ "${QKD_ARCHIVE:-0}" = 1 ] && bash scripts/archive.sh save "$runs"
# one report per program (qkdc report merges the cells of one program): v2 in docs/results/,
# v1 in docs/results/v1/
./build/qkdc report "$runs/paper_v2" -o docs/results --compare examples/paper_reference.json || rc=1
./build/qkdc report "$runs/paper_v1" -o docs/results/v1 --compare examples/paper_reference.json --runs || rc=1
exit $rc
