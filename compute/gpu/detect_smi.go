//go:build !cgo || !linux

package gpu

import "context"

// Detect lists the machine's NVIDIA GPUs by running nvidia-smi, as this build
// cannot load the driver library itself. Without nvidia-smi on PATH, or when
// it reports no driver or no GPU, it returns nil and no error. It gives up
// when ctx ends or after ten seconds.
func Detect(ctx context.Context) ([]GPU, error) {
	return detectSMI(ctx)
}
