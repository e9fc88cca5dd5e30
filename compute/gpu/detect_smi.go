//go:build !cgo || !linux || !nvml

package gpu

import "context"

// Detect lists the machine's NVIDIA GPUs by running nvidia-smi, as this
// build does not load the driver library itself (that takes the nvml tag and
// cgo on Linux). Without nvidia-smi on PATH, or when it reports no driver or
// no GPU, it returns nil and no error. It gives up when ctx ends or after
// ten seconds.
func Detect(ctx context.Context) ([]GPU, error) {
	return detectSMI(ctx)
}
