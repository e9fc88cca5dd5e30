#!/usr/bin/env bash
# bench-compare.sh BASE [ROUNDS]: measures the job benchmark (submit to
# start, the burst) and the WASM executor's benchmarks of the commit BASE
# and of the working tree, in turns within one run, so that both meet the
# same machine load, and prints each figure's median for both and their
# ratio. Run from the repository root.
set -euo pipefail

base=${1:?usage: scripts/bench-compare.sh BASE [ROUNDS]}
rounds=${2:-3}
GO=${GO:-go}
tags=$(scripts/have-openblas.sh)
tmp=$(mktemp -d)
out=$tmp/out
mkdir -p "$out"
cleanup() {
  git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach "$tmp/base" "$base" >/dev/null

build() { # TREE NAME
  local tree=$1 name=$2
  (cd "$tree" &&
    $GO build -tags "$tags" -o "$out/cyxwiz-$name" ./cmd/cyxwiz &&
    $GO build -tags "$tags" -o "$out/bench-$name" ./test/bench &&
    $GO test -c -tags "$tags" -o "$out/wasm-$name.test" ./compute/wasm)
}
# Both trees are measured by this tree's benchmarks: BASE gets a copy of
# the job benchmark and of the executor's, without the disk limit when it
# does not know it.
if git cat-file -e "$base:node/devnet/devnet.go" 2>/dev/null; then
  cp test/bench/jobs.go "$tmp/base/test/bench/jobs.go"
else # the devnet lived in package node then
  sed -e 's#"github.com/cyxwiz/cyxwiz/node/devnet"#"github.com/cyxwiz/cyxwiz/node"#' \
    -e 's/devnet\.Start(/node.StartDevnet(/' -e 's/devnet\.Params{/node.DevnetParams{/' \
    test/bench/jobs.go >"$tmp/base/test/bench/jobs.go"
fi
if git show "$base:compute/executor.go" | grep -q OutBytes; then
  cp compute/wasm/bench_test.go "$tmp/base/compute/wasm/bench_test.go"
else
  sed 's/ OutBytes: 64 << 20,//' compute/wasm/bench_test.go >"$tmp/base/compute/wasm/bench_test.go"
fi
build "$tmp/base" base
build . head

for i in $(seq "$rounds"); do
  for name in base head; do
    tree=.
    [ "$name" = base ] && tree=$tmp/base
    echo "round $i: $name" >&2
    (cd "$tree" && "$out/bench-$name" -bin "$out/cyxwiz-$name" -dir "$tmp/run-$name" -starts 1 -idle 1s \
      -transfer-mib 0 -announce-hosts 0 -train-epochs 0) >>"$out/jobs-$name.txt"
    (cd "$tree/compute/wasm" &&
      "$out/wasm-$name.test" -test.run '^$' -test.bench CPUBound -test.benchtime 10x &&
      "$out/wasm-$name.test" -test.run '^$' -test.bench Tiny -test.benchtime 3000x) >>"$out/wasm-$name.txt"
  done
done

# values FILE PATTERN FIELD: one field of the lines matching, sorted.
values() {
  grep -E "$2" "$1" | awk -v f="$3" '{gsub(/ms$/, "", $f); print $f + 0}' | sort -n
}
median() {
  awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
row() { # LABEL FILE PATTERN FIELD
  local b h
  b=$(values "$out/$2-base.txt" "$3" "$4" | median)
  h=$(values "$out/$2-head.txt" "$3" "$4" | median)
  awk -v l="$1" -v b="$b" -v h="$h" 'BEGIN {printf "  %-44s %12.2f %12.2f %8.3f\n", l, b, h, (b > 0 ? h / b : 0)}'
  echo "      base: $(values "$out/$2-base.txt" "$3" "$4" | tr '\n' ' ')"
  echo "      head: $(values "$out/$2-head.txt" "$3" "$4" | tr '\n' ' ')"
}
echo
echo "medians of $rounds rounds, $base (base) against the working tree (head)"
printf '  %-44s %12s %12s %8s\n' figure base head head/base
row "submit -> start, tiny module, p50 (ms)" jobs 'submit -> start, tiny' 8
row "submit -> start, tiny module, p99 (ms)" jobs 'submit -> start, tiny' 9
row "submit -> start, Go module, p50 (ms)" jobs 'submit -> start, Go' 8
row "submit -> start, Go module, p99 (ms)" jobs 'submit -> start, Go' 9
row "burst of tiny jobs (jobs/s)" jobs 'burst of tiny jobs' 5
row "WASM CPU-bound guest (ns/op)" wasm '^BenchmarkCPUBoundGuest' 3
row "WASM tiny module (ns/op)" wasm '^BenchmarkTinyModule' 3
