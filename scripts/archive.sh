#!/usr/bin/env bash
# scripts/archive.sh save|restore RUNS — keeps the finished cells of long grids in the repository
# (results/<grid file>/cells/…/seed=S.json, a few KB each: the figures, never the weights), so a
# grid that outlives one machine resumes on the next one:
#   save RUNS     copies RUNS/<name>/cells/**.json and grid.json into results/<name>/ (newer wins)
#   restore RUNS  copies them back into RUNS/<name>/ without overwriting anything there; `qkdc run`
#                 then skips every cell whose key matches (the key covers the program text, the
#                 data files and the qkdc version, so a changed cell reruns).
# A clean reproduction (scripts/reproduce.sh on an empty RUNS) does not use the archive.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}; runs=${2:-runs}
case "$mode" in
  save)
    for d in "$runs"/*/; do
      name=$(basename "$d")
      [ -f "$d/grid.json" ] && [ -d "$d/cells" ] || continue
      mkdir -p "results/$name"
      cp "$d/grid.json" "results/$name/grid.json"
      (cd "$d" && find cells -name '*.json' -print0) | while IFS= read -r -d '' f; do
        mkdir -p "results/$name/$(dirname "$f")"
        cp -u "$d/$f" "results/$name/$f"
      done
      echo "archive: $(find "results/$name/cells" -name '*.json' | wc -l) cells of $name in results/$name" >&2
    done ;;
  restore)
    [ -d results ] || exit 0
    for d in results/*/; do
      name=$(basename "$d")
      [ -d "$d/cells" ] || continue
      mkdir -p "$runs/$name"
      cp -rn "$d/cells" "$runs/$name/"
      echo "archive: restored $(find "$d/cells" -name '*.json' | wc -l) cells of $name into $runs/$name" >&2
    done ;;
  *) echo "usage: scripts/archive.sh save|restore RUNS" >&2; exit 2 ;;
esac
