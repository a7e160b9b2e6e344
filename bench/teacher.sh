#!/usr/bin/env bash
# bench/teacher.sh — teacher training benchmark (run from the repo root). Prints JSON lines only:
#   LeNet-5 on MNIST (Adam 1e-3, batch 128, 5 epochs, pixels/255) with 1 and 2 threads, each row
#   carrying the PyTorch peer (ref_lenet_torch.py, best of 1 and 2 threads) and ratio = ours/peer
#   images/s; then alexnet_small on MNIST (2 threads) with images/s and peak RSS.
# alexnet_small trains on the first $QKD_BENCH_ALEX_IMAGES training images (default 6400, about
# a tenth of an epoch, so the whole script stays under 20 minutes on 2 shared cores; 60000 or 0
# = the full epoch): its row then says "train_images" and "projected_epoch_s" (60000 / images_per_s),
# and its accuracy is "acc_after_train_images" (not an epoch's). Every run has a time limit
# ($QKD_BENCH_TIMEOUT seconds, default 600): a run that fails or times out gives null figures
# and an "error"/"peer_error" key.
# Uses $QKD_BUILD when set, else builds build/ in Release. Peer from $QKD_PEER_DIR (default
# ../shared/bench), run with /usr/bin/python3 (apt-get install python3-torch if missing).
# Always exits 0; stdout carries the JSON lines only.
cd "$(dirname "$0")/.." || exit 0
BUILD=${QKD_BUILD:-}
if [ -z "$BUILD" ]; then
  BUILD=build
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1
  cmake --build "$BUILD" -j2 --target teacher_bench >/dev/null 2>&1
fi
BIN=$BUILD/bench/teacher_bench
PEER_DIR=${QKD_PEER_DIR:-../shared/bench}
PY=/usr/bin/python3
EPOCHS=${QKD_BENCH_EPOCHS:-5}
ALEX_IMAGES=${QKD_BENCH_ALEX_IMAGES:-6400}
LIMIT=${QKD_BENCH_TIMEOUT:-600}

# the data root the peer reads (<root>/mnist), found like the runtime's data path
ROOT=""
IFS=: read -r -a roots <<< "${QKD_DATA:-}"
for r in "${roots[@]}" ./data data /usr/share/datasets; do
  if [ -n "$r" ] && [ -d "$r/mnist" ]; then ROOT=$r; break; fi
done

ours=()
for t in 1 2; do
  ours[$t]=$(timeout "$LIMIT" "$BIN" --model lenet5 --dataset mnist --threads "$t" --epochs "$EPOCHS" 2>/dev/null | tail -n 1)
done
peer=()
if [ -x "$PY" ] && [ -f "$PEER_DIR/ref_lenet_torch.py" ] && [ -n "$ROOT" ]; then
  for t in 1 2; do
    peer[$t]=$(timeout "$LIMIT" "$PY" "$PEER_DIR/ref_lenet_torch.py" --data "$ROOT" --dataset mnist --threads "$t" --epochs "$EPOCHS" 2>/dev/null | tail -n 1)
  done
fi

"$PY" - "${ours[1]:-}" "${ours[2]:-}" "${peer[1]:-}" "${peer[2]:-}" <<'PYEOF'
import json, sys
def parse(s):
    try:
        return json.loads(s)
    except Exception:
        return None
ours = [parse(sys.argv[1]), parse(sys.argv[2])]
peers = [p for p in (parse(sys.argv[3]), parse(sys.argv[4])) if p]
best = max(peers, key=lambda p: p.get("images_per_s", 0)) if peers else None
for t, o in zip((1, 2), ours):
    row = {"model": "lenet5", "dataset": "mnist", "threads": t}
    if o is None:
        row["images_per_s"] = None
        row["error"] = "teacher_bench failed or timed out"
    else:
        row["images_per_s"] = round(o["images_per_s"], 1)
        for e in (1, 2, 5):
            if f"acc_epoch{e}" in o: row[f"acc_epoch{e}"] = o[f"acc_epoch{e}"]
    row["peer"] = "torch"
    if best:
        row["peer_threads"] = best.get("threads")
        row["peer_images_per_s"] = round(best["images_per_s"], 1)
        for e in (1, 2, 5):
            if f"acc_epoch{e}" in best: row[f"peer_acc_epoch{e}"] = round(best[f"acc_epoch{e}"], 4)
        if o is not None:
            row["ratio"] = round(o["images_per_s"] / best["images_per_s"], 3)
    else:
        row["peer_threads"] = None
        row["peer_images_per_s"] = None
        row["ratio"] = None
        row["peer_error"] = "peer failed, timed out or unavailable (python3-torch or data missing)"
    print(json.dumps(row))
PYEOF

lim=()
[ "$ALEX_IMAGES" -gt 0 ] 2>/dev/null && [ "$ALEX_IMAGES" -lt 60000 ] && lim=(--train-limit "$ALEX_IMAGES")
a=$(timeout "$LIMIT" "$BIN" --model alexnet_small --dataset mnist --threads 2 --epochs 1 "${lim[@]}" 2>/dev/null | tail -n 1)
"$PY" - "$a" "${#lim[@]}" <<'PYEOF'
import json, sys
limited = sys.argv[2] != "0"
try:
    o = json.loads(sys.argv[1])
    row = {"model": "alexnet_small", "dataset": "mnist", "threads": o["threads"], "epochs": 1,
           "params": o["params"], "images_per_s": round(o["images_per_s"], 1),
           "peak_rss_mb": o["peak_rss_mb"]}
    if limited:  # a part of one epoch
        del row["epochs"]
        row["train_images"] = o.get("train_images")
        row["projected_epoch_s"] = round(60000 / o["images_per_s"], 1)
        row["acc_after_train_images"] = o.get("acc_epoch1")
    else:
        row["train_seconds"] = o.get("train_seconds")
        row["acc_epoch1"] = o.get("acc_epoch1")
except Exception:
    row = {"model": "alexnet_small", "dataset": "mnist", "images_per_s": None,
           "error": "teacher_bench failed or timed out"}
print(json.dumps(row))
PYEOF
exit 0
