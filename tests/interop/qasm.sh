#!/usr/bin/env bash
# tests/interop/qasm.sh QASM_TOOL — runtime/qasm.c against an independent simulator, npm's
# quantum-circuit (tests/interop/node/package.json pins it; scripts/test.sh installs it with
# `npm ci` into tests/interop/node/node_modules): qasm_tool writes the cases (every gate kind,
# random circuits with data-driven angles bound to random features, amplitude state preparations
# at n = 1..8) with qkd's interpreter state; qasm_check.js reads and simulates them (see there).
# Without node: a failure. Without the module: a failure under scripts/test.sh or CI, else a skip
# (exit 77) that says how to install it.
set -uo pipefail
tool=$1
here=$(cd "$(dirname "$0")" && pwd)
modules=${QKD_NODE_MODULES:-$here/node/node_modules}
command -v node >/dev/null || { echo "qasm.sh: node is missing (apt-get install nodejs npm)"; exit 1; }
if [ ! -d "$modules/quantum-circuit" ]; then
  msg="qasm.sh: npm's quantum-circuit is not installed in $modules (npm ci --prefix $here/node)"
  if [ "${QKD_TEST_SH:-0}" = 1 ] || [ "${CI:-}" = true ]; then echo "$msg"; exit 1; fi
  echo "$msg: skipped"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tool" "$work" >/dev/null || { echo "qasm.sh: qasm_tool failed"; exit 1; }
node --no-warnings "$here/qasm_check.js" "$work" "$modules"
