#!/usr/bin/env bash
# tests/e2e/noise.sh QKDC — `noise:` lowered onto the circuit, checked from `qkdc check --dump-ir`:
#  1. every channel sits after each gate its after: matches, on each of the gate's qubits that
#     on: admits, calls in the order written — recomputed here from the dumped gates and the
#     rules in docs/language.md, not from qkdc's own lowering; read-out per qubit;
#     `qkdc draw` marks each of them on its qubit's wire and lists each kind once in its legend;
#  2. `qkdc run` trains and evaluates under noise on the density-matrix engine: every p = 0
#     gives the noiseless (JIT) run to rounding, p > 0 changes training, eval_noise: leaves
#     training alone and evaluates the test split under its noise (full depolarisation: the
#     constant prediction, one class's share of the labels), 1 and 2 threads the same bits;
#     on trajectories, shots with read-out run, and at p = 0 give the noiseless shots' run;
#  3. parameter_shift with noise is refused (it would run the noiseless circuit);
#  4. a built executable gives the same runs; emit-llvm refuses a noisy student;
#  5. `qkdc sim --noise` (ρ's diagonal, the read-out probabilities, <Z>, Jacobians) against a
#     NumPy density matrix built here and its central differences.
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
# 2: training and evaluation under noise through `qkdc run` (the density-matrix engine)
cat > "$work/r.qkd" <<'QKD'
dataset d { source: "synthetic" classes: 0..1 shape: [1, 2, 2] }
circuit c() { for q in qubits { ry(q, x[q]) } cnot(0, 1) for q in qubits { ry(q, 0.3) } }
student clean { qubits: 2 circuit: c measure: z head: dense(2) }
student zero { qubits: 2 circuit: c measure: z head: dense(2) noise: [depolarizing(0), amplitude_damping(0), readout(0, 0)] }
student noisy { qubits: 2 circuit: c measure: z head: dense(2) noise: depolarizing(0.05) }
experiment a { data: d student: clean loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment b { data: d student: zero loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment c2 { data: d student: noisy loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment dead { data: d student: clean loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 }
                  eval_noise: depolarizing(0.75) }
student tzero { qubits: 2 circuit: c measure: z head: dense(2) noise: [depolarizing(0), phase_damping(0)]
                noise_engine: trajectories trajectories: 3 }
student tnoisy { qubits: 2 circuit: c measure: z head: dense(2) noise_engine: trajectories trajectories: 4
                 noise: [depolarizing(0.05), phase_damping(0.1), readout(0.02, 0.04)] }
student tclean { qubits: 2 circuit: c measure: z head: dense(2) noise_engine: trajectories trajectories: 16 }
experiment tz { data: d student: tzero loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment tn { data: d student: tnoisy loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment te { data: d student: tclean loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 }
                eval_noise: depolarizing(0.2) }
student sclean { qubits: 2 circuit: c measure: z head: dense(2) shots: 32 }
student szero { qubits: 2 circuit: c measure: z head: dense(2) shots: 32 noise: [depolarizing(0), readout(0, 0)]
                noise_engine: trajectories trajectories: 5 }
student snoisy { qubits: 2 circuit: c measure: probs head: dense(2) shots: 32 trajectories: 3
                 noise: [depolarizing(0.05), readout(0.05, 0.1)] noise_engine: trajectories }
experiment sa { data: d student: sclean loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment sz { data: d student: szero loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
experiment sn { data: d student: snoisy loss: ce train { optimizer: adam(lr: 0.05) epochs: 3 batch: 8 } }
QKD
"$qkdc" run "$work/r.qkd" --out "$work/run" --threads 2 2>"$work/run.log" || { cat "$work/run.log"; fail "a noisy run"; }
"$qkdc" run "$work/r.qkd" --out "$work/run1" --threads 1 2>"$work/run1.log" || { cat "$work/run1.log"; fail "a noisy run, 1 thread"; }
$py - "$work" <<'PY' || fail "training or evaluating under noise"
import json, sys
import numpy as np
w = sys.argv[1]
res = {e["experiment"]: e["distilled"] for e in json.load(open(w + "/run/results.json"))["experiments"]}
res1 = {e["experiment"]: e["distilled"] for e in json.load(open(w + "/run1/results.json"))["experiments"]}
# p = 0 on the density-matrix engine: the JIT's noiseless run, to rounding
for x, y in zip(res["a"]["train_loss"], res["b"]["train_loss"]):
    assert abs(x - y) <= 1e-9 * abs(x), (res["a"]["train_loss"], res["b"]["train_loss"])
assert res["a"]["test_accuracy_per_epoch"] == res["b"]["test_accuracy_per_epoch"]
# noise changes training
assert all(abs(x - y) > 1e-6 for x, y in zip(res["a"]["train_loss"], res["c2"]["train_loss"])), res["c2"]["train_loss"]
# eval_noise: trained exactly as `a`; tested under full depolarisation (<Z> = 0 for every image), so
# every test image gets the head's bias: the accuracy is one class's share of the test labels
assert res["dead"]["train_loss"] == res["a"]["train_loss"]
labels = np.load(w + "/run/dead.test_labels.npy")
logits = np.load(w + "/run/dead.distilled.test_logits.npy")
assert np.allclose(logits, logits[0], atol=1e-6), "the logits under full depolarisation depend on the image"
share = [float(np.mean(labels == k)) for k in (0, 1)]
assert any(abs(res["dead"]["test_accuracy"] - s) < 1e-12 for s in share), (res["dead"]["test_accuracy"], share)
assert res["a"]["test_accuracy"] > max(share) + 0.1, "the noiseless student learned nothing: the check above proves nothing"
# trajectories: every p = 0 is the noiseless run, bit for bit; p > 0 changes training; eval_noise
# on trajectories leaves training alone and moves the test logits
assert (res["tz"]["train_loss"], res["tz"]["test_accuracy_per_epoch"]) == (res["a"]["train_loss"], res["a"]["test_accuracy_per_epoch"])
assert all(abs(x - y) > 1e-6 for x, y in zip(res["a"]["train_loss"], res["tn"]["train_loss"])), res["tn"]["train_loss"]
assert res["te"]["train_loss"] == res["a"]["train_loss"]
la, le = np.load(w + "/run/a.distilled.test_logits.npy"), np.load(w + "/run/te.distilled.test_logits.npy")
assert la.shape == le.shape and np.abs(la - le).max() > 1e-3, "eval_noise on trajectories changed nothing"
# shots on trajectories: with every p = 0 the noiseless shots (same keys), bit for bit; with
# read-out and noise a run of its own
assert (res["sz"]["train_loss"], res["sz"]["test_accuracy_per_epoch"]) == (res["sa"]["train_loss"], res["sa"]["test_accuracy_per_epoch"])
assert all(abs(x - y) > 1e-6 for x, y in zip(res["sa"]["train_loss"], res["sn"]["train_loss"])), res["sn"]["train_loss"]
# the same bits on 1 and 2 threads
for k in res:
    assert (res[k]["train_loss"], res[k]["test_accuracy_per_epoch"]) == (res1[k]["train_loss"], res1[k]["test_accuracy_per_epoch"]), k
PY
# 2b: trajectories run Pauli channels only; the exact engine stops at 12 qubits
sed 's/noise: depolarizing(0.05) }/noise: amplitude_damping(0.05) noise_engine: trajectories }/' "$work/r.qkd" > "$work/ad.qkd"
if "$qkdc" check "$work/ad.qkd" 2>"$work/ad.log"; then fail "amplitude_damping on trajectories accepted"; fi
grep -q "ad.qkd:5:.*amplitude_damping is not a Pauli channel" "$work/ad.log" || { cat "$work/ad.log"; fail "no reason given for amplitude_damping"; }
cat > "$work/big.qkd" <<'QKD'
dataset d { source: "synthetic" classes: 0..1 shape: [1, 2, 2] }
circuit c() { for q in qubits { ry(q, x[q % 4]) } }
student s { qubits: 13 circuit: c measure: z head: dense(2) noise: depolarizing(0.01) noise_engine: exact }
experiment e { data: d student: s loss: ce train { optimizer: adam(lr: 0.05) epochs: 1 batch: 8 } }
QKD
if "$qkdc" check "$work/big.qkd" 2>"$work/big.log"; then fail "exact noise on 13 qubits accepted"; fi
grep -q "at most 12 qubits.*use noise_engine: trajectories" "$work/big.log" || { cat "$work/big.log"; fail "no reason given for 13 qubits"; }
sed 's/ noise_engine: exact//' "$work/big.qkd" > "$work/big2.qkd"
"$qkdc" check "$work/big2.qkd" --dump-ir > "$work/big2.txt" 2>"$work/big2.log" || { cat "$work/big2.log"; fail "auto engine at 13 qubits"; }
grep -q "trajectories=1" "$work/big2.txt" || { head -3 "$work/big2.txt"; fail "auto did not choose trajectories at 13 qubits"; }
# 3: parameter shift would run the noiseless circuit: refused
sed 's/experiment c2 { data: d student: noisy loss: ce/experiment c2 { data: d student: noisy loss: ce gradient: parameter_shift/' "$work/r.qkd" > "$work/ps.qkd"
if "$qkdc" check "$work/ps.qkd" 2>"$work/ps.log"; then fail "parameter_shift under noise accepted"; fi
grep -q "parameter_shift runs the noiseless circuit" "$work/ps.log" || { cat "$work/ps.log"; fail "no reason given for parameter_shift"; }
# 4: a built executable runs the noisy experiments on the runtime's engine, with the same results
"$qkdc" build "$work/r.qkd" -o "$work/exe" 2>"$work/build.log" || { cat "$work/build.log"; fail "qkdc build of a noisy program"; }
"$work/exe" --out "$work/exe-run" --threads 2 2>"$work/exe.log" || { cat "$work/exe.log"; fail "the built executable"; }
$py - "$work" <<'PY' || fail "the built executable differs from qkdc run"
import json, sys
w = sys.argv[1]
acc = lambda f: {e["experiment"]: e["distilled"]["train_loss"] for e in json.load(open(f))["experiments"]}
assert acc(w + "/exe-run/results.json") == acc(w + "/run/results.json")
PY
# 5: qkdc sim --noise against a density matrix computed here with NumPy (Kraus sums, PennyLane's
#    operators; qubit 0 the most significant bit), and its Jacobian against central differences
cat > "$work/sim.qkd" <<'QKD'
circuit c() { for q in qubits { ry(q, x[q]) } cnot(0, 1) for q in qubits { rz(q) ry(q) } }
QKD
printf "0.3 0.7 0.1 0.2\n" > "$work/par.txt"
printf "0.5 1.1\n" > "$work/in.txt"
"$qkdc" sim "$work/sim.qkd" --circuit "c()" --qubits 2 --params "$work/par.txt" --input "$work/in.txt" \
  --noise "[depolarizing(0.1), amplitude_damping(0.2, after: [cnot]), readout(0.05, 0.1, on: 1)]" --grad > "$work/sim.json" \
  || fail "qkdc sim --noise"
$py - "$work/sim.json" <<'PY' || fail "qkdc sim --noise differs from NumPy"
import json, sys
import numpy as np
out = json.load(open(sys.argv[1]))
I, X, Y, Z = np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])
ry = lambda t: np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]])
rz = lambda t: np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])
on = lambda m, q: np.kron(m, I) if q == 0 else np.kron(I, m)
CNOT = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
dep = lambda p: [np.sqrt(1 - p) * I, np.sqrt(p / 3) * X, np.sqrt(p / 3) * Y, np.sqrt(p / 3) * Z]
ad = lambda g: [np.array([[1, 0], [0, np.sqrt(1 - g)]]), np.array([[0, np.sqrt(g)], [0, 0]])]
def run(theta):
    rho = np.zeros((4, 4), complex); rho[0, 0] = 1
    def gate(U, qs, cnot=False):
        nonlocal rho
        rho = U @ rho @ U.conj().T
        for q in qs:
            for K in ([dep(0.1)] + ([ad(0.2)] if cnot else [])):
                rho = sum(on(k, q) @ rho @ on(k, q).conj().T for k in K)
    for q, x in enumerate([0.5, 1.1]): gate(on(ry(x), q), [q])
    gate(CNOT, [0, 1], cnot=True)
    for q in range(2):  # parameters in order of appearance: rz q0, ry q0, rz q1, ry q1
        gate(on(rz(theta[2 * q]), q), [q])
        gate(on(ry(theta[2 * q + 1]), q), [q])
    d = np.real(np.diag(rho))
    C1 = np.array([[0.95, 0.1], [0.05, 0.9]])             # P(read r | true t) on qubit 1
    p = (np.kron(np.eye(2), C1) @ d)
    z = [p[0] + p[1] - p[2] - p[3], p[0] - p[1] + p[2] - p[3]]
    return d, p, np.array(z)
th = np.array([0.3, 0.7, 0.1, 0.2])
d, p, z = run(th)
assert np.allclose(out["rho_diag"], d, atol=1e-12), (out["rho_diag"], d)
assert np.allclose(out["probs"], p, atol=1e-12) and abs(sum(out["probs"]) - 1) < 1e-12, (out["probs"], p)
assert np.allclose(out["z"], z, atol=1e-12), (out["z"], z)
h = 1e-6
for k in range(4):
    e = np.zeros(4); e[k] = h
    (_, pp, zp), (_, pm, zm) = run(th + e), run(th - e)
    assert np.allclose(np.array(out["jacobian_z"])[:, k], (zp - zm) / (2 * h), atol=1e-8), k
    assert np.allclose(np.array(out["jacobian_probs"])[:, k], (pp - pm) / (2 * h), atol=1e-8), k
PY
# emit-llvm prints the kernels of noiseless circuits only: it refuses a noisy one
if "$qkdc" emit-llvm "$work/r.qkd" --student noisy >"$work/ll" 2>"$work/ll.log"; then fail "emit-llvm accepted a noisy student"; fi
grep -q "has noise" "$work/ll.log" || { cat "$work/ll.log"; fail "no reason given by emit-llvm"; }
echo "noise: 1 passed, 0 failed"
