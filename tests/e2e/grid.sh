#!/usr/bin/env bash
# tests/e2e/grid.sh QKDC — grids end to end on synthetic data (tests/e2e/grid.qkd, 8 cells):
#  1. `qkdc cells` lists the cells in order; `--cells K/3` slices cover the grid exactly once;
#  2. `qkdc report A B C` merges the slices: every row has its 2 seeds, and equals an
#     uninterrupted run of the whole grid (identical accuracies);
#  3. seed_teachers: one teacher per seed, each trained once, the cell's teacher seed = its seed;
#  4. kill -9 mid-grid, run again: finished cells are not retrained, the results are identical;
#  5. report refuses a directory from another version of the program (other --set values);
#  6. the chart: well-formed SVG, one group per row, one bar per run kind, whiskers, --compare marks;
#  7. the plain experiment beside the grid is in results.json; a cell's json has control_params;
#  8. `qkdc build` of a grid: the executable gives the same results.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
prog="$here/grid.qkd"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3

"$qkdc" cells "$prog" > "$work/cells.txt" || fail "qkdc cells"
[ "$(wc -l < "$work/cells.txt")" = 8 ] || fail "expected 8 cells, got $(wc -l < "$work/cells.txt")"
[ "$(head -n 1 "$work/cells.txt")" = "g/qubits=2/method=amp/seed=1" ] || fail "first cell: $(head -n 1 "$work/cells.txt")"
[ "$(sed -n 2p "$work/cells.txt")" = "g/qubits=2/method=amp/seed=2" ] || fail "seeds vary fastest"
[ "$(tail -n 1 "$work/cells.txt")" = "g/qubits=3/method=angle/seed=2" ] || fail "last cell: $(tail -n 1 "$work/cells.txt")"

# 1-2: three slices, merged
for k in 1 2 3; do
  "$qkdc" run "$prog" --out "$work/s$k" --cells "$k/3" --threads 2 2>"$work/s$k.log" || { cat "$work/s$k.log"; fail "slice $k"; }
done
"$qkdc" report "$work/s1" "$work/s2" "$work/s3" -o "$work/merged" 2>"$work/report.log" || { cat "$work/report.log"; fail "report"; }
"$qkdc" run "$prog" --out "$work/full" --threads 2 2>"$work/full.log" || { cat "$work/full.log"; fail "full run"; }

$py - "$work" <<'PY' || fail "slices, merge or full run"
import json, glob, os, sys
w = sys.argv[1]
cells = open(w + "/cells.txt").read().split()
def cell_files(d):
    out = {}
    for f in glob.glob(d + "/cells/**/*.json", recursive=True):
        j = json.load(open(f))
        out[j["cell"]] = j
    return out
seen = []
for k in (1, 2, 3):
    seen += list(cell_files(f"{w}/s{k}"))
assert sorted(seen) == sorted(cells), ("slices do not cover the grid exactly once", sorted(seen))
m = json.load(open(w + "/merged/results.json"))
g = m["grids"][0]
assert g["missing"] == [], g["missing"]
assert len(g["rows"]) == 4 and all(r["n"] == 2 for r in g["rows"]), g["rows"]
assert [(r["qubits"], r["method"]) for r in g["rows"]] == [("2", "amp"), ("2", "angle"), ("3", "amp"), ("3", "angle")]
full = json.load(open(w + "/full/results.json"))
acc = lambda j: {e["cell"]: (e["distilled"]["test_accuracy"], e["baseline"]["test_accuracy"], e["control"]["test_accuracy"])
                 for e in j["experiments"] if "cell" in e}
assert acc(m) == acc(full), "merged slices differ from the uninterrupted run"
# the row statistics from the cells, recomputed independently
import statistics as st
for r in g["rows"]:
    es = [e for e in m["experiments"] if e.get("axes") == {"qubits": r["qubits"], "method": r["method"]}]
    d = [e["distilled"]["test_accuracy"] for e in es]
    b = [e["baseline"]["test_accuracy"] for e in es]
    assert abs(r["distilled_mean"] - st.mean(d)) < 1e-12 and abs(r["distilled_std"] - st.stdev(d)) < 1e-12
    gains = [x - y for x, y in zip(d, b)]
    assert abs(r["kd_gain_mean"] - st.mean(gains)) < 1e-12 and abs(r["kd_gain_std"] - st.stdev(gains)) < 1e-12
    for e in es:
        assert e["teacher_training"]["seed"] == e["seed"], "seed_teachers: the teacher's seed is the cell's"
        assert e["student"]["control_params"] > 0 and e["control"]["test_accuracy"] is not None
    assert r["teachers"] == 2, "two seeds, two teachers"
plain = [e for e in full["experiments"] if "cell" not in e]
assert [e["experiment"] for e in plain] == ["plain"], plain
PY
# 3: one teacher per seed, each trained once (the full run trains two)
[ "$(grep -c "^teacher 't': .* parameters" "$work/full.log")" = 2 ] || fail "expected 2 teachers trained in the full run"
grep -q "^teacher 't': .* seed 2" "$work/full.log" || fail "no teacher with seed 2"

# 4: kill -9 after the first cell, then run again
"$qkdc" run "$prog" --out "$work/kill" --threads 1 2>"$work/kill.log" &
pid=$!
for _ in $(seq 1 600); do
  [ -n "$(find "$work/kill/cells" -name '*.json' 2>/dev/null | head -n 1)" ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
done_before=$(find "$work/kill/cells" -name '*.json' | wc -l)
[ "$done_before" -ge 1 ] || fail "no cell finished before the kill"
"$qkdc" run "$prog" --out "$work/kill" --threads 2 2>"$work/kill2.log" || { cat "$work/kill2.log"; fail "re-run after kill"; }
ran=$(grep -c "^\[.*distilled: test accuracy" "$work/kill2.log" || true)
[ "$ran" = $((8 - done_before)) ] || fail "re-run trained $ran cells, expected $((8 - done_before)) (done before: $done_before)"
$py - "$work" <<'PY' || fail "results after kill -9 differ from the uninterrupted run"
import json, sys
w = sys.argv[1]
acc = lambda j: {e["cell"]: (e["distilled"]["test_accuracy"], e["baseline"]["test_accuracy"], e["control"]["test_accuracy"])
                 for e in j["experiments"] if "cell" in e}
a, b = acc(json.load(open(w + "/kill/results.json"))), acc(json.load(open(w + "/full/results.json")))
assert len(a) == 8 and a == b
PY

# 5: another version of the program is refused
"$qkdc" run "$prog" --out "$work/other" --cells 1/8 --set kd.train.epochs=1 --threads 2 2>"$work/other.log" || fail "other run"
if "$qkdc" report "$work/s1" "$work/other" -o "$work/mixed" 2>"$work/mixed.log"; then fail "report mixed two versions"; fi
grep -q "another program" "$work/mixed.log" || { cat "$work/mixed.log"; fail "no reason given for refusing"; }
if "$qkdc" report "$work/nowhere" 2>/dev/null; then fail "report of a missing directory succeeded"; fi

# 6: the chart, with reference marks
cat > "$work/ref.json" <<'JSON'
[{"grid": "g", "qubits": "2", "method": "amp", "accuracy": 0.5, "label": "paper"},
 {"qubits": 3, "method": "angle", "error": 0.4}]
JSON
"$qkdc" report "$work/full" --compare "$work/ref.json" 2>/dev/null || fail "report --compare"
$py - "$work/full/g.svg" <<'PY' || fail "the chart's structure"
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
groups = root.findall(".//s:g[@class='group']", ns)
assert len(groups) == 4, len(groups)
for g in groups:
    kinds = [r.get("data-kind") for r in g.findall("s:rect[@class='bar']", ns)]
    assert kinds == ["distilled", "baseline", "control"], kinds
    assert len(g.findall("s:path[@class='whisker']", ns)) == 3
refs = root.findall(".//s:path[@class='reference']", ns)
assert sorted(float(r.get("data-error")) for r in refs) == [0.4, 0.5], [r.get("data-error") for r in refs]
assert groups[0].get("data-combination") == "qubits=2/method=amp"
PY
$py - "$work/full" <<'PY' || fail "the rows' paper values"
import json, sys
rows = {(r["qubits"], r["method"]): r for r in json.load(open(sys.argv[1] + "/results.json"))["grids"][0]["rows"]}
assert rows[("2", "amp")]["paper"] == 0.5 and rows[("2", "amp")]["paper_label"] == "paper", rows[("2", "amp")]
assert abs(rows[("3", "angle")]["paper"] - 0.6) < 1e-12 and "paper_label" not in rows[("3", "angle")]
assert all(r["paper"] is None for k, r in rows.items() if k not in {("2", "amp"), ("3", "angle")})
md = open(sys.argv[1] + "/results.md").read()
assert "| paper |" in md and "| 50.00 |" in md and "| 60.00 |" in md
assert "Every run of" not in md, "runs listed without --runs"
PY
# 7: --runs lists every run; its figures recomputed from the cell files
"$qkdc" report "$work/full" --runs -o "$work/runs" 2>/dev/null || fail "report --runs"
$py - "$work" <<'PY' || fail "the runs table differs from the cells"
import json, glob, sys
w = sys.argv[1]
md = open(w + "/runs/results.md").read()
table = md[md.index("Every run of `g`"):]
lines = [l for l in table.splitlines() if l.startswith("| ") and not l.startswith("| qubits")]
cells = {json.load(open(f))["cell"]: json.load(open(f)) for f in glob.glob(w + "/full/cells/**/*.json", recursive=True)}
assert len(lines) == len(cells) == 8, (len(lines), len(cells))
for l in lines:
    f = [x.strip() for x in l.strip("|").split("|")]
    c = cells[f"g/qubits={f[0]}/method={f[1]}/seed={f[2]}"]
    def best(kind):
        a = c[kind]["test_accuracy_per_epoch"]
        i = max(range(len(a)), key=lambda k: (a[k], -k))
        return f"{100 * a[i]:.2f} ({i + 1})"
    want = [f"{100 * c['distilled']['test_accuracy']:.2f}", best("distilled"),
            f"{100 * c['baseline']['test_accuracy']:.2f}", best("baseline"), f"{100 * c['control']['test_accuracy']:.2f}"]
    assert f[5:10] == want, (l, want)
    assert f[3] == str(c["classes"]) and f[4].endswith(f"{100 * c['teacher_training']['test_accuracy']:.2f}"), (l, c["teacher_training"])
PY
# 8: a built executable runs the grid (kernels for every distinct cell circuit) with the same results
"$qkdc" build "$prog" -o "$work/exe" 2>"$work/build.log" || { cat "$work/build.log"; fail "qkdc build of a grid"; }
"$work/exe" --out "$work/exe-run" --threads 2 2>"$work/exe.log" || { cat "$work/exe.log"; fail "built grid executable"; }
$py - "$work" <<'PY' || fail "the built executable's cells differ from qkdc run's"
import json, sys
w = sys.argv[1]
acc = lambda j: {e.get("cell", e["experiment"]): (e["distilled"]["test_accuracy"], e["baseline"] and e["baseline"]["test_accuracy"])
                 for e in j["experiments"]}
assert acc(json.load(open(w + "/exe-run/results.json"))) == acc(json.load(open(w + "/full/results.json")))
PY
# 9: cells that differ only in their teacher share one baseline run; it equals a recomputed one
"$qkdc" run "$here/grid_teachers.qkd" --out "$work/tshare" --threads 2 2>"$work/tshare.log" || fail "teacher grid"
[ "$(grep -c 'baseline: the same run as an earlier cell' "$work/tshare.log")" = 2 ] || fail "the baselines were not shared"
"$qkdc" run "$here/grid_teachers.qkd" --out "$work/tsolo" --cells 4/4 --threads 2 2>"$work/tsolo.log" || fail "teacher grid slice"
grep -q 'baseline: the same run' "$work/tsolo.log" && fail "a lone slice cannot share"
cmp <(grep -o '"baseline": {[^}]*' -z "$work/tshare/cells/g/teacher=t2/seed=2.json" | tr -d '\0' | grep -v seconds) \
    <(grep -o '"baseline": {[^}]*' -z "$work/tsolo/cells/g/teacher=t2/seed=2.json" | tr -d '\0' | grep -v seconds) \
  || fail "a shared baseline differs from the one computed on its own"
cmp "$work/tshare/cells/g/teacher=t2/seed=2.baseline.qkw" "$work/tsolo/cells/g/teacher=t2/seed=2.baseline.qkw" \
  || fail "a shared baseline's weights differ from the ones computed on their own"
# 10: a replication axis (teacher_seed): the report's spread over teachers and over student seeds,
# recomputed from the cell files
"$qkdc" run "$here/grid_spread.qkd" --out "$work/spread" --threads 2 2>"$work/spread.log" || { cat "$work/spread.log"; fail "spread grid"; }
"$qkdc" report "$work/spread" -o "$work/spread-report" 2>/dev/null || fail "report of the spread grid"
$py - "$work" <<'PY' || fail "the spreads differ from the cells'"
import json, statistics as st, sys
w = sys.argv[1]
rep = json.load(open(w + "/spread-report/results.json"))
sp = rep["grids"][0]["spreads"]
assert len(sp) == 2, sp
for g in sp:
    x = {(t, s): json.load(open(f"{w}/spread/cells/spread/qubits={g['qubits']}/teacher_seed={t}/seed={s}.json"))["distilled"]["test_accuracy"]
         for t in (1, 2, 3) for s in (1, 2, 3)}
    over_t = st.stdev([st.mean(x[t, s] for s in (1, 2, 3)) for t in (1, 2, 3)])
    over_s = st.stdev([st.mean(x[t, s] for t in (1, 2, 3)) for s in (1, 2, 3)])
    assert g["axis"] == "teacher_seed" and g["n"] == 9, g
    assert abs(g["std_over_axis"] - over_t) < 1e-12 and abs(g["std_over_seeds"] - over_s) < 1e-12, (g, over_t, over_s)
    assert abs(g["distilled_mean"] - st.mean(x.values())) < 1e-12 and abs(g["std_all"] - st.stdev(x.values())) < 1e-12, g
    assert len({json.load(open(f"{w}/spread/cells/spread/qubits={g['qubits']}/teacher_seed={t}/seed=1.json"))["teacher"]["test_accuracy"]
                for t in (1, 2, 3)}) > 1, "the three teachers are the same"
PY
grep -q "over teacher_seed" "$work/spread-report/results.md" || fail "results.md has no spread table"
# 11: teachers are keyed by net, recipe and data, never by name: ta and tb (the same teacher under
# two names) train once, tc (another seed) trains; in one process, and across two slices of one
# run directory (the second slice finds ta's file under tb's key)
"$qkdc" run "$here/grid_alias.qkd" --out "$work/alias" --threads 1 2>"$work/alias.log" || { cat "$work/alias.log"; fail "alias grid"; }
[ "$(grep -c "^teacher '.*': [0-9]* parameters" "$work/alias.log")" = 2 ] || { cat "$work/alias.log"; fail "ta and tb were not trained once"; }
acc() { grep -o '"teacher": {[^}]*' "$1" | grep -o '"test_accuracy": [0-9.e-]*'; }
[ "$(acc "$work/alias/cells/alias/teacher=ta/seed=1.json")" = "$(acc "$work/alias/cells/alias/teacher=tb/seed=1.json")" ] ||
  fail "ta and tb report different teachers"
"$qkdc" run "$here/grid_alias.qkd" --out "$work/alias2" --cells 1/3 --threads 1 2>"$work/alias2a.log" || fail "alias slice 1/3"
"$qkdc" run "$here/grid_alias.qkd" --out "$work/alias2" --cells 2/3 --threads 1 2>"$work/alias2b.log" || fail "alias slice 2/3"
grep -q "teacher 'tb': the same net, recipe and data as .*/teachers/ta\.[0-9a-f]*\.qkw" "$work/alias2b.log" ||
  { cat "$work/alias2b.log"; fail "slice 2 did not find ta's file for tb"; }
grep -q "teacher 'tb': test accuracy [0-9.]* (cached)" "$work/alias2b.log" || fail "slice 2 trained tb again"
dacc() { grep -o '"distilled": {[^}]*' "$1" | grep -o '"test_accuracy": [0-9.e-]*'; }
[ "$(dacc "$work/alias/cells/alias/teacher=ta/seed=1.json")" = "$(dacc "$work/alias/cells/alias/teacher=tb/seed=1.json")" ] &&
[ "$(dacc "$work/alias2/cells/alias/teacher=tb/seed=1.json")" = "$(dacc "$work/alias/cells/alias/teacher=tb/seed=1.json")" ] ||
  fail "a student of tb differs from one of ta"
[ "$(acc "$work/alias2/cells/alias/teacher=tb/seed=1.json")" = "$(acc "$work/alias/cells/alias/teacher=tb/seed=1.json")" ] ||
  fail "tb from ta's file is another teacher"
echo "grid: 1 passed, 0 failed"
