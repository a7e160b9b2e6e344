#!/usr/bin/env bash
# tests/e2e/fulldisk.sh QKDC — a run directory on a full disk (a 16 KiB tmpfs; needs root, as in
# CI): `qkdc run` must exit 1 and name every output it could not write, never exit 0 with files
# missing; with room again, the same run succeeds.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { umount "$work/full" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/full"
mount -t tmpfs -o size=16k tmpfs "$work/full" || fail "cannot mount a small tmpfs (the test needs root)"
set +e
"$qkdc" run "$here/synthetic.qkd" --set long.train.epochs=1 --out "$work/full/run" --threads 2 2>"$work/log"
code=$?
set -e
[ "$code" = 1 ] || { cat "$work/log"; fail "a full disk gave exit $code, not 1"; }
grep -q "No space left on device" "$work/log" || fail "the reason (No space left on device) is not said"
grep -q "could not be written (.*\.qkw" "$work/log" || { tail -n 3 "$work/log"; fail "the closing message does not name the missing files"; }
[ -z "$(find "$work/full" -name '*.tmp.*')" ] || fail "temporary files left on the full disk"
umount "$work/full"
"$qkdc" run "$here/synthetic.qkd" --set long.train.epochs=1 --out "$work/full/run" --threads 2 2>"$work/log2" \
  || { cat "$work/log2"; fail "the same run with room"; }
echo "fulldisk: 1 passed, 0 failed"
