#!/usr/bin/env bash
# tests/e2e/noise.sh QKDC — `noise:` lowered onto the circuit, checked from `qkdc check --dump-ir`:
#  1. every channel sits after each gate its after: matches, on each of the gate's qubits that
#     on: admits, calls in the order written — recomputed here from the dumped gates and the
#     rules in docs/language.md, not from qkdc's own lowering; read-out per qubit;
#     `qkdc draw` marks each of them on its qubit's wire and lists each kind once in its legend;
#  2. `qkdc run` refuses a noisy student (and an eval_noise:) before training anything, exit 1,
#     naming the experiment, with no results written; `qkdc build` and `emit-llvm` refuse it:
#     the kernels do not run noise yet.
set -euo pipefail
qkdc=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
cat > "$work/n.qkd" <<'QKD'
dataset d { source: "synthetic" classes: 0..1 shape: [1, 2, 2] }
circuit c() {
  for q in qubits { ry(q, x[q]) }
  for l in 0..2 { for q in qubits { rz(q, 0.1 * l + q) } cnot(0, 1) cnot(1, 2) cz(2, 0) }
}
student s { qubits: 3 circuit: c measure: probs head: dense(2)
            noise: [depolarizing(0.01), amplitude_damping(0.02, after: two_qubit, on: 1..3),
                    phase_flip(0.03, after: [rz, cz], on: [0, 2]), bit_flip(0, after: one_qubit, on: 1),
                    readout(0.02, 0.05, on: [0, 2])] }
experiment e { data: d student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 4 } }
QKD
"$qkdc" check "$work/n.qkd" --dump-ir > "$work/dump.txt" 2>"$work/check.log" || { cat "$work/check.log"; fail "check"; }
"$qkdc" draw "$work/n.qkd" --student s > "$work/draw.txt" 2>"$work/draw.log" || { cat "$work/draw.log"; fail "draw"; }
$py - "$work/dump.txt" "$work/draw.txt" <<'PY' || fail "the lowered channels"
import re, sys
gates, chans, readout = [], [], {}
for line in open(sys.argv[1]):
    m = re.match(r"\s+(\d+) (\w+)\s+((?:q\d+ ?)+)", line)
    if m:
        gates.append((m.group(2), [int(q) for q in re.findall(r"q(\d+)", m.group(3))]))
        continue
    m = re.match(r"\s+~ (\w+) q(\d+) \w+=(\S+)", line)
    if m:
        chans.append((len(gates), m.group(1), int(m.group(2)), float(m.group(3))))
        continue
    m = re.match(r"\s+readout q(\d+) p01=(\S+) p10=(\S+)", line)
    if m:
        readout[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
assert len(gates) == 3 + 2 * (3 + 3), gates
specs = [("depolarizing", 0.01, lambda g: True, {0, 1, 2}),
         ("amplitude_damping", 0.02, lambda g: len(g[1]) == 2, {1, 2}),
         ("phase_flip", 0.03, lambda g: g[0] in ("rz", "cz"), {0, 2}),
         ("bit_flip", 0.0, lambda g: len(g[1]) == 1, {1})]
want = [(i + 1, name, q, p) for i, g in enumerate(gates) for name, p, match, on in specs if match(g) for q in g[1] if q in on]
assert chans == want, (chans, want)
assert readout == {0: (0.02, 0.05), 1: (0.0, 0.0), 2: (0.02, 0.05)}, readout  # uncovered: perfect
draw = open(sys.argv[2]).read().splitlines()
marks = {"depolarizing": "~D", "amplitude_damping": "~AD", "phase_flip": "~PF", "bit_flip": "~BF"}
for q in range(3):
    row = draw[q]
    assert row.startswith(f"q{q}: "), row
    for name, mark in marks.items():
        n = sum(1 for c in chans if c[1] == name and c[2] == q)
        assert len(re.findall(re.escape(mark) + r"(?![A-Z])", row)) == n, (q, name, n, row)
    assert row.rstrip().endswith("~R") == (q in (0, 2)), row
for name, mark in marks.items():
    n = sum(1 for c in chans if c[1] == name)
    assert any(l.startswith(f"{mark} = {name}(") and l.endswith(f", {n} times") for l in draw), (name, draw)
PY
cat > "$work/e.qkd" <<'QKD'
dataset d { source: "synthetic" classes: 0..1 shape: [1, 2, 2] }
circuit c() { for q in qubits { ry(q, x[q]) } cnot(0, 1) }
student s { qubits: 2 circuit: c measure: z head: dense(2) }
experiment clean { data: d student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 4 } }
experiment noisy_eval { data: d student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 4 }
                        eval_noise: depolarizing(0.05) }
QKD
if "$qkdc" run "$work/e.qkd" --out "$work/run" 2>"$work/run.log"; then fail "qkdc run accepted eval_noise"; fi
grep -q "experiment 'noisy_eval'.*not available in \`qkdc run\` yet" "$work/run.log" || { cat "$work/run.log"; fail "no reason given"; }
[ ! -e "$work/run/results.json" ] || fail "a refused run wrote results"
sed -i 's/student s { qubits: 2 circuit: c measure: z head: dense(2) }/student s { qubits: 2 circuit: c measure: z head: dense(2) noise: bit_flip(0.1) }/; s/eval_noise: depolarizing(0.05)//' "$work/e.qkd"
if "$qkdc" run "$work/e.qkd" --out "$work/run" 2>"$work/run.log"; then fail "qkdc run accepted a noisy student"; fi
grep -q "experiment 'clean'.*not available" "$work/run.log" || { cat "$work/run.log"; fail "no reason given for the noisy student"; }
# qkdc build and emit-llvm refuse it too (their kernels would run the gates alone)
if "$qkdc" build "$work/e.qkd" -o "$work/exe" 2>"$work/build.log"; then fail "qkdc build accepted a noisy student"; fi
grep -q "circuit 's' has noise" "$work/build.log" || { cat "$work/build.log"; fail "no reason given by build"; }
[ ! -e "$work/exe" ] || fail "a refused build wrote an executable"
if "$qkdc" emit-llvm "$work/e.qkd" >"$work/ll" 2>"$work/ll.log"; then fail "emit-llvm accepted a noisy student"; fi
grep -q "has noise" "$work/ll.log" || { cat "$work/ll.log"; fail "no reason given by emit-llvm"; }
echo "noise: 1 passed, 0 failed"
