// Package kernels holds the CUDA kernels of the training runtime's GPU
// backend as PTX text: kernels.cu compiled by scripts/build-ptx.sh for
// sm_80, which the CUDA driver compiles on load for the GPU at hand. The
// package has no build constraints and no cgo, so any binary can carry the
// PTX; only compute/train/cuda loads it.
package kernels

import _ "embed"

// PTX is the PTX module built from kernels.cu.
//
//go:embed kernels.ptx
var PTX string

// Names are the kernels in PTX, as the driver looks them up.
var Names = []string{
	"fill", "activate", "activate_grad", "dropout", "mul",
	"im2col", "col2im", "maxpool", "maxpool_grad", "sgd", "adam",
}
