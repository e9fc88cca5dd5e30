#!/usr/bin/env bash
# Build a stock IPFS Kubo binary for interoperability tests.
#
# Usage: scripts/build-kubo.sh [OUT]   (default OUT: <repo>/bin/ipfs)
#
# Kubo's go.mod replaces github.com/libp2p/go-libp2p with a fork that the Go
# module proxy does not serve. We drop that replace and require the released
# go-libp2p instead, then build ./cmd/ipfs from a writable copy of the module.
# Idempotent: exits at once if OUT already reports the wanted version.
set -euo pipefail

KUBO_MOD=github.com/ipfs/kubo
KUBO_VERSION=0.43.1
LIBP2P_MOD=github.com/libp2p/go-libp2p
LIBP2P_VERSION=v0.51.0

log() { printf 'build-kubo: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
out=${1:-$repo_root/bin/ipfs}
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

has_version() {
	[[ -x "$1" ]] && "$1" version 2>/dev/null | grep -qF "$KUBO_VERSION"
}

if has_version "$out"; then
	log "$out is already Kubo $KUBO_VERSION; nothing to do"
	exit 0
fi

command -v go >/dev/null || die "go not found in PATH"
# Never let the go command fetch a toolchain (no internet here).
export GOTOOLCHAIN=local GOWORK=off GO111MODULE=on

log "locating $KUBO_MOD@v$KUBO_VERSION in the module cache"
dir=$(go mod download -json "$KUBO_MOD@v$KUBO_VERSION" |
	sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
[[ -n "$dir" && -f "$dir/go.mod" ]] || die "could not download $KUBO_MOD@v$KUBO_VERSION"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/build-kubo.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
src="$tmp/kubo"
cp -R "$dir" "$src"
chmod -R u+w "$src"
cd "$src"

# Kubo's required go version must not exceed the local toolchain.
want_go=$(go mod edit -json | sed -n 's/^[[:space:]]*"Go":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
have_go=$(go env GOVERSION)
have_go=${have_go#go}
if [[ -n "$want_go" ]] &&
	[[ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | tail -n1)" != "$have_go" ]]; then
	die "Kubo needs go $want_go but local toolchain is go $have_go (GOTOOLCHAIN=local)"
fi

# Drop the go-libp2p replace (a fork the proxy does not serve). Other
# replaces, if any, are reported; none are expected for v0.43.1.
replaces=$(go mod edit -json | awk '
	/"Old": \{/ { old = 1; next }
	old && /"Path":/ { gsub(/[",]/, "", $2); print $2; old = 0 }')
for r in $replaces; do
	[[ "$r" == "$LIBP2P_MOD" ]] || log "note: keeping replace for $r"
done
log "go.mod: dropping replace of $LIBP2P_MOD, requiring $LIBP2P_MOD@$LIBP2P_VERSION"
go mod edit -dropreplace="$LIBP2P_MOD" -require="$LIBP2P_MOD@$LIBP2P_VERSION"

log "go mod tidy (downloads missing modules via GOPROXY)"
go mod tidy

log "building ./cmd/ipfs -> $out"
mkdir -p "$(dirname "$out")"
start=$SECONDS
go build -mod=mod -trimpath -o "$out.tmp.$$" ./cmd/ipfs
mv -f "$out.tmp.$$" "$out"
log "built in $((SECONDS - start))s"

has_version "$out" || die "$out version does not report $KUBO_VERSION: $("$out" version 2>&1 || true)"
log "ok: $("$out" version)"
