#!/usr/bin/env bash
# fuzz.sh runs every native Go fuzz test (func FuzzXxx) of the module's
# packages, each alone for FUZZTIME (default 30s), prints one line per
# fuzzer with its result, and exits non-zero if any failed. A failing
# input is saved under the package's testdata/fuzz, where plain go test
# runs it from then on. GO names the go command (default: go).
#
#   scripts/fuzz.sh [FUZZTIME]
set -euo pipefail
fuzztime=${1:-30s}
go=${GO:-go}
cd "$(dirname "$0")/.."

pkgs=$("$go" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ./...)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ran=0
failed=0
while read -r pkg dir; do
	# Listing builds the package's tests, so skip those with no fuzz test.
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	if ! names=$("$go" test -list '^Fuzz' "$pkg" 2>&1 </dev/null); then
		echo "FAIL  $pkg (its tests do not build)"
		echo "$names" >&2
		failed=$((failed + 1))
		continue
	fi
	for name in $(grep '^Fuzz' <<<"$names" || true); do
		ran=$((ran + 1))
		start=$SECONDS
		if "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1 </dev/null; then
			echo "ok    $pkg $name ($((SECONDS - start))s)"
		else
			echo "FAIL  $pkg $name ($((SECONDS - start))s)"
			sed 's/^/    /' "$log" >&2
			failed=$((failed + 1))
		fi
	done
done <<<"$pkgs"

if [ "$ran" -eq 0 ] && [ "$failed" -eq 0 ]; then
	echo "no fuzz tests found" >&2
	exit 1
fi
echo "$ran fuzzers ran for $fuzztime each, $failed failed"
[ "$failed" -eq 0 ]
