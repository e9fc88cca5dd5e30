// Package train is the built-in ML training runtime behind the train job
// kind: a sequential layer graph (dense, conv2d, maxpool, flatten,
// dropout, activations, softmax) trained with SGD or Adam on IDX or CSV
// data, writing safetensors weights, checkpoints and a metrics stream.
//
// The numeric work goes through a Backend. The CPU backend runs GEMM on
// OpenBLAS where the binary is built with it (build tag openblas) and on
// gonum's pure-Go kernel otherwise; the CUDA backend (subpackage cuda,
// build tag cuda) runs in a separate worker process so that a broken GPU
// driver never takes the daemon down. With a fixed seed a CPU run is
// reproducible bit for bit.
package train
