#!/usr/bin/env bash
# tests/e2e/cache.sh QKDC — the kernel object cache through `qkdc run` (tests/e2e/threads.qkd):
# a first run fills QKD_CACHE_DIR, a second one uses it and gives byte-identical weights; the
# cache's entries are not touched by --no-cache; QKD_CACHE_DIR=off and an unwritable cache
# directory still run (the latter with one warning), with the same weights.
set -euo pipefail
qkdc=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { # NAME [ENV...] [-- ARGS...]: a run of threads.qkd in $work/NAME
  local name=$1; shift
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  mkdir -p "$work/$name"
  cp "$here/threads.qkd" "$work/$name/"
  (cd "$work/$name" && env "${envs[@]}" "$qkdc" run threads.qkd --out run "$@" 2>run.log) ||
    { cat "$work/$name/run.log"; fail "run $name"; }
}
entries() { find "$work/cache" -name '*.qko' 2>/dev/null | wc -l; }
same() { for f in e.distilled.qkw e.baseline.qkw; do cmp -s "$work/$1/run/$f" "$work/$2/run/$f" || fail "$f differs between $1 and $2"; done; }

run cold QKD_CACHE_DIR="$work/cache"
n=$(entries); [ "$n" -ge 1 ] || fail "the first run stored no kernel objects"
stamp=$(find "$work/cache" -name '*.qko' -printf '%T@ %p\n' | sort)
sleep 1
run warm QKD_CACHE_DIR="$work/cache"
same cold warm
[ "$(entries)" = "$n" ] || fail "the second run added entries: it did not hit"
[ "$(find "$work/cache" -name '*.qko' -printf '%T@ %p\n' | sort)" != "$stamp" ] || fail "a hit did not mark its entry used"
stamp=$(find "$work/cache" -name '*.qko' -printf '%T@ %p\n' | sort)
sleep 1
run nocache QKD_CACHE_DIR="$work/cache" -- --no-cache
same cold nocache
[ "$(find "$work/cache" -name '*.qko' -printf '%T@ %p\n' | sort)" = "$stamp" ] || fail "--no-cache read or wrote the cache"
run off QKD_CACHE_DIR=off
same cold off
touch "$work/afile"
run unwritable QKD_CACHE_DIR="$work/afile/kernels"
same cold unwritable
[ "$(grep -c 'warning: kernel cache' "$work/unwritable/run.log")" = 1 ] || { cat "$work/unwritable/run.log"; fail "an unwritable cache should warn once"; }
echo "cache: cold, warm, --no-cache, off and unwritable runs give the same weights"
