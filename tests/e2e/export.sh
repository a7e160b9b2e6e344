#!/usr/bin/env bash
# tests/e2e/export.sh QKDC — `qkdc export` and `qkdc run --export` end to end (export.qkd):
#  1. `qkdc run --export qasm3` writes <experiment>.distilled.qasm; `qkdc export --sample 0` from
#     the .qkw and the reloaded data writes the same program (trainer's parameters and features
#     against the ones read back), to stdout and with -o; the baseline's weights give another;
#  2. the trained weights with random features (--features, a list and @FILE): OpenQASM 2 and 3
#     of both students, simulated by npm's quantum-circuit (tests/interop/qasm_check.js), equal
#     `qkdc sim` of the same circuit call with the .qkw's parameters (1e-9, up to a global phase);
#  3. refusals, exit 1 and no output file: OpenQASM 2 or amplitude encoding without a sample, a
#     wrong feature count, a missing --weights file, a sample outside the test split, an unknown
#     experiment; without a weights file, the initial parameters and a warning.
# Part 2 needs node and the module, as tests/interop/qasm.sh does (skip outside scripts/test.sh).
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
body() { grep -v '^//' "$1"; }
cd "$work"
cp "$here/export.qkd" .

"$qkdc" run export.qkd --out W --threads 1 --export qasm3 2>run.log || { cat run.log; fail "qkdc run --export"; }
for f in a.distilled.qasm b.distilled.qasm; do
  [ -s "W/$f" ] && head -1 "W/$f" | grep -qx 'OPENQASM 3.0;' || fail "W/$f missing or not OpenQASM 3"
done
"$qkdc" export export.qkd --out W --experiment a --sample 0 >a.qasm 2>a.log || { cat a.log; fail "export a"; }
diff <(body W/a.distilled.qasm) <(body a.qasm) || fail "qkdc export differs from the run's export"
"$qkdc" export export.qkd --out W --experiment b --sample 0 -o b.qasm 2>b.log || { cat b.log; fail "export b"; }
diff <(body W/b.distilled.qasm) <(body b.qasm) || fail "qkdc export -o differs from the run's export"
grep -q 'amplitude encoding: state preparation of the 8 features (Mottonen et al.): 7 RY, 6 CNOT' a.qasm \
  || fail "no state preparation in a.qasm"
"$qkdc" export export.qkd --out W --experiment a --run baseline --sample 0 >ab.qasm 2>/dev/null || fail "baseline"
! diff -q <(body a.qasm) <(body ab.qasm) >/dev/null || fail "the baseline's export is the distilled one's"

# refusals
refuse() { # WHAT PATTERN ARGS…
  local what=$1 pat=$2; shift 2
  rm -f out.qasm
  if "$qkdc" export export.qkd --out W "$@" -o out.qasm 2>err.log; then fail "$what: exit 0"; fi
  grep -q -- "$pat" err.log || { cat err.log; fail "$what: message"; }
  [ ! -e out.qasm ] || fail "$what: out.qasm written"
}
refuse "qasm2 without a sample" "OpenQASM 2 has no inputs" --experiment b --format qasm2
refuse "amplitude without a sample" "amplitude encoding is a state preparation" --experiment a
refuse "wrong feature count" "takes the 4 features" --experiment b --features 1,2,3
refuse "missing weights" "nothere.qkw" --experiment b --weights nothere.qkw --sample 0
refuse "sample outside" "sample 16 is not in the split" --experiment b --sample 16
refuse "unknown experiment" "no experiment or grid cell of that name" --experiment zz
"$qkdc" export export.qkd --out nowhere --experiment b >init.qasm 2>init.log || fail "no weights: exit 1"
# --format npz: the run's classical parts and θ, byte for byte as `qkdc run` wrote them; none without a run
"$qkdc" export export.qkd --out W --experiment a --format npz -o a.npz 2>npz.log || { cat npz.log; fail "export --format npz"; }
cmp -s a.npz W/a.distilled.npz || fail "export --format npz differs from the run's .npz"
if "$qkdc" export export.qkd --out nowhere --experiment a --format npz -o none.npz 2>npz.log; then fail "npz without a run: exit 0"; fi
grep -q "nowhere/a.distilled.npz" npz.log && [ ! -e none.npz ] || fail "npz without a run: file not named, or written"
grep -q "warning: no weights" init.log || fail "no weights: no warning"
grep -q "^input float\[64\] x_3;" init.qasm || fail "no weights: no inputs"

# 2: against an independent simulator
modules=${QKD_NODE_MODULES:-$here/../interop/node/node_modules}
if ! command -v node >/dev/null || [ ! -d "$modules/quantum-circuit" ]; then
  msg="export.sh: node or npm's quantum-circuit ($modules) missing for part 2"
  if [ "${QKD_TEST_SH:-0}" = 1 ] || [ "${CI:-}" = true ]; then fail "$msg"; fi
  echo "$msg: skipped"
  exit 77
fi
mkdir cases
python3 - W cases <<'PY'
import json, random, struct, sys
w, cases = sys.argv[1], sys.argv[2]
random.seed(11)
for exp, nf in (("a", 8), ("b", 4)):
    b = open(f"{w}/{exp}.distilled.qkw", "rb").read()
    nl = struct.unpack_from("<I", b, 12)[0]
    off = 16 + nl
    P = struct.unpack_from("<Q", b, off)[0]
    params = struct.unpack_from(f"<{P}d", b, off + 16)
    open(f"{cases}/{exp}.params", "w").write(" ".join(repr(p) for p in params) + "\n")
    x = [random.uniform(-1, 1) for _ in range(nf)]
    open(f"{cases}/{exp}.features", "w").write(",".join(repr(v) for v in x) + "\n")
    open(f"{cases}/{exp}.input", "w").write(" ".join(repr(v) for v in x) + "\n")
PY
sim_case() { # EXPERIMENT N CALL ENCODE
  local e=$1 n=$2
  "$qkdc" sim export.qkd --circuit "$3" --qubits "$n" --params "cases/$e.params" --input "cases/$e.input" \
    --encode "$4" >"cases/$e.sim" || fail "qkdc sim $e"
  python3 - "cases/$e.sim" "cases/$e.features" "$n" >"cases/$e.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
x = [float(v) for v in open(sys.argv[2]).read().strip().split(",")]
print(json.dumps({"n": int(sys.argv[3]), "features": x, "state": s["state"]}))
PY
  "$qkdc" export export.qkd --out W --experiment "$e" --format qasm2 --features "$(cat "cases/$e.features")" \
    -o "cases/$e.qasm2" 2>/dev/null || fail "export $e qasm2"
  "$qkdc" export export.qkd --out W --experiment "$e" --features "@cases/$e.features" -o "cases/$e.qasm3" 2>/dev/null \
    || fail "export $e qasm3"
}
sim_case a 3 'strong(layers: 2)' amplitude
sim_case b 4 'strong(layers: 1)' 'angle()'
"$qkdc" export export.qkd --out W --experiment b -o cases/b.in.qasm3 2>/dev/null || fail "export b inputs"
node --no-warnings "$here/../interop/qasm_check.js" cases "$modules" || fail "quantum-circuit disagrees"
echo "export: run and export agree, refusals hold, 2 students re-simulated"
