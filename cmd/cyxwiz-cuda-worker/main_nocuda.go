//go:build !cuda

// Command cyxwiz-cuda-worker is the GPU trainer; this build has no CUDA.
// Build it with `make cuda-worker` (the cuda build tag).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cyxwiz-cuda-worker: built without CUDA; build it with `make cuda-worker`")
	os.Exit(2)
}
