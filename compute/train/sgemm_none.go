//go:build !cgo || !openblas

package train

const fastSgemmName = ""

var fastSgemm sgemmFunc
