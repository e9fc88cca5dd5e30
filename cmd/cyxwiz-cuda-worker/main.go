//go:build cuda

// Command cyxwiz-cuda-worker trains one train job on an NVIDIA GPU through
// CUDA (gorgonia.org/cu, cuBLAS for GEMM, our kernels for the rest). The
// daemon starts it for each GPU job, in its own process, so that a missing
// or broken driver ends this process and never the daemon:
//
//	cyxwiz-cuda-worker train -spec FILE -data DIR -out DIR [-device N]
//
// Metrics go to stdout as JSON lines, log lines to stderr.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/compute/train/cuda"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := train.ServeWorker(ctx, os.Args[1:], os.Stdout, os.Stderr, func(device int) (train.Backend, error) {
		return cuda.New(device)
	})
	stop()
	os.Exit(code)
}
