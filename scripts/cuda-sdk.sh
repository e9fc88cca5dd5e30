#!/usr/bin/env bash
# cuda-sdk.sh fetches what it takes to compile and link gorgonia.org/cu and
# gorgonia.org/cu/blas on a machine without a GPU or a CUDA toolkit:
#
#   DIR/include   the CUDA headers that cuda.h and cublas_v2.h pull in, taken
#                 from Debian's non-free nvidia-cuda-dev package (CUDA 12.4
#                 in trixie) and libcu++-dev (nv/target, which cuda_fp16.h
#                 includes);
#   DIR/stubs     link stubs built here with gcc: libcuda.so (SONAME
#                 libcuda.so.1) and libcublas.so (SONAME $CUBLAS_SONAME,
#                 default libcublas.so.13), defining every function the
#                 headers declare, so that a binary links against them and
#                 resolves the real driver and cuBLAS when it starts;
#   DIR/env.sh    CGO_CFLAGS and CGO_LDFLAGS to source before a cuda-tagged
#                 build.
#
# Usage: scripts/cuda-sdk.sh [DIR]    (default DIR: .cache/cuda-sdk in the
# repository). It runs apt-get with a private configuration (the system's
# sources are left alone), so it needs a Debian mirror and root for
# apt-get update. Running it again skips what is already there.
#
# Overrides: CUDA_SDK_SUITE (trixie), CUDA_SDK_MIRROR, CUDA_SDK_KEYRING,
# CUDA_SONAME (libcuda.so.1), CUBLAS_SONAME (libcublas.so.13) and
# CUDA_RUNPATH (/usr/local/cuda/lib64, the run path written into binaries).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/.cache/cuda-sdk}
suite=${CUDA_SDK_SUITE:-trixie}
# The Debian mirror: the one this machine's apt already uses.
mirror=${CUDA_SDK_MIRROR:-$(
	{ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
	  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | sed 's/\[[^]]*\]//' | awk '{print $2}'
	} | grep -v -- '-security' | head -1
)}
if [ -z "$mirror" ]; then
	echo "cuda-sdk: no Debian mirror in the apt sources; set CUDA_SDK_MIRROR" >&2
	exit 1
fi
keyring=${CUDA_SDK_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
cuda_soname=${CUDA_SONAME:-libcuda.so.1}
cublas_soname=${CUBLAS_SONAME:-libcublas.so.13}
# Where the real libraries live on GPU machines; baked into the binary as a
# run path so that libcublas is found without LD_LIBRARY_PATH.
runpath=${CUDA_RUNPATH:-/usr/local/cuda/lib64}

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { echo "cuda-sdk: $*" >&2; }

# fetch_headers downloads nvidia-cuda-dev and libcu++-dev and keeps the
# headers that cuda.h and cublas_v2.h include, directly or not.
fetch_headers() {
	local apt_dir=$work/apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d"
	echo "deb [signed-by=$keyring] $mirror $suite main contrib non-free" >"$apt_dir/sources.list"
	local opts=(
		-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
		-o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o "APT::Architectures=$(dpkg --print-architecture)"
		-o "Acquire::Languages=none"
	)
	if [ "$(id -u)" = 0 ]; then
		opts+=(-o "APT::Sandbox::User=root")
	fi
	log "reading the $suite package index"
	apt-get "${opts[@]}" -q update >&2
	log "downloading nvidia-cuda-dev (about 1 GB) and libcu++-dev"
	(cd "$work" && apt-get "${opts[@]}" -q download nvidia-cuda-dev libcu++-dev >&2)
	local deb
	mkdir -p "$work/root"
	for deb in "$work"/*.deb; do
		log "unpacking the headers of $(basename "$deb")"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" ./usr/include
		rm -f "$deb"
	done

	local inc=$work/root/usr/include
	if [ ! -f "$inc/cuda.h" ] || [ ! -f "$inc/cublas_v2.h" ]; then
		echo "cuda-sdk: no cuda.h and cublas_v2.h in the packages' /usr/include" >&2
		exit 1
	fi
	# Keep only the headers a C compiler opens for cuda.h and cublas_v2.h.
	printf '#include <cuda.h>\n#include <cublas_v2.h>\n' >"$work/probe.c"
	mkdir -p "$dest/include.new"
	gcc -M -I"$inc" "$work/probe.c" | tr ' \\' '\n\n' | { grep "^$inc/" || true; } | sort -u |
		while read -r h; do
			rel=${h#"$inc"/}
			mkdir -p "$dest/include.new/$(dirname "$rel")"
			cp "$h" "$dest/include.new/$rel"
		done
	rm -rf "$dest/include"
	mv "$dest/include.new" "$dest/include"
	rm -rf "$work/root"
}

# make_stub LIB SONAME HEADER PATTERN builds DIR/stubs/LIB.so defining
# every function declared in HEADER whose name matches PATTERN.
make_stub() {
	local lib=$1 soname=$2 header=$3 pattern=$4
	local out=$dest/stubs/$lib.so
	if [ -f "$out" ] && readelf -d "$out" | grep -q "Library soname: \[$soname\]"; then
		return
	fi
	mkdir -p "$dest/stubs"
	printf '#include <%s>\n' "$header" >"$work/$lib.h.c"
	gcc -E -P -I"$dest/include" "$work/$lib.h.c" |
		grep -oE "\\b$pattern[A-Za-z0-9_]*[[:space:]]*\\(" | tr -d ' \t(' | sort -u |
		awk '{ printf "void %s(void) {}\n", $1 }' >"$work/$lib.c"
	log "$lib stub: $(wc -l <"$work/$lib.c") functions, SONAME $soname"
	gcc -shared -fPIC -O0 -Wl,-soname,"$soname" -o "$out" "$work/$lib.c"
}

if [ -f "$dest/include/cuda.h" ] && [ -f "$dest/include/cublas_v2.h" ]; then
	log "headers already in $dest/include"
else
	fetch_headers
fi
make_stub libcuda "$cuda_soname" cuda.h 'cu[A-Z]'
make_stub libcublas "$cublas_soname" cublas_v2.h 'cublas[A-Z]'

cflags="-I$dest/include"
ldflags="-L$dest/stubs -Wl,-rpath,$runpath"
cat >"$dest/env.sh" <<EOF
# Source this before a cuda-tagged build (written by scripts/cuda-sdk.sh).
export CGO_CFLAGS="$cflags"
export CGO_LDFLAGS="$ldflags"
EOF
echo "CGO_CFLAGS=\"$cflags\""
echo "CGO_LDFLAGS=\"$ldflags\""
log "or: . $dest/env.sh"
