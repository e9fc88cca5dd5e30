#!/usr/bin/env bash
# have-openblas.sh prints "openblas" when a C compiler can build and link a
# CBLAS call against OpenBLAS here, and nothing otherwise. The Makefile uses
# it to pick the build tag of the fast GEMM path.
set -u
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || exit 0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/t.c" <<'C'
#include <cblas.h>
int main(void) { float a = 1, b = 1, c = 0; cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1); return c != 1; }
C
if "$cc" -o "$dir/t" "$dir/t.c" -lopenblas >/dev/null 2>&1; then
	echo openblas
fi
