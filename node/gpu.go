package node

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/gpu"
	"github.com/cyxwiz/cyxwiz/market"
)

// findGPUs detects the machine's GPUs and the worker that trains on them.
// GPUs are offered only when both are there; every other case is logged
// and leaves the node training on the CPU.
func findGPUs(ctx context.Context, cfg MarketConfig, log *slog.Logger) (worker string, gpus []market.GPU) {
	if !cfg.DetectGPUs || !slices.Contains(cfg.Executors, market.KindTrain) {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	found, err := gpu.Detect(ctx)
	if err != nil {
		log.Warn("GPU detection failed; training on the CPU only", "error", err)
		return "", nil
	}
	if len(found) == 0 {
		return "", nil
	}
	worker = cfg.GPUWorker
	if worker == "" {
		worker = lookWorker()
	}
	if worker == "" {
		log.Warn("GPUs found but no GPU worker (cyxwiz-cuda-worker); training on the CPU only", "gpus", gpu.Summary(found))
		return "", nil
	}
	for _, g := range found {
		if !gpu.Matches([]gpu.GPU{g}, 1, 0, MinGPUComputeCapability) {
			log.Warn("GPU not offered: the GPU kernels need compute capability "+MinGPUComputeCapability, "gpu", g.Name,
				"compute_capability", g.ComputeCapability)
			continue
		}
		gpus = append(gpus, market.GPU{Model: g.Name, MemoryMiB: int(g.MemoryMiB), ComputeCapability: g.ComputeCapability,
			Driver: g.Driver, CUDA: g.CUDA})
	}
	if len(gpus) == 0 {
		return "", nil
	}
	log.Info("GPUs offered for train jobs", "gpus", gpu.Summary(found), "worker", worker)
	return worker, gpus
}

// MinGPUComputeCapability is the oldest GPU the worker's kernels run on
// (they are PTX for sm_80).
const MinGPUComputeCapability = "8.0"

// GPUWorkerName is the file name of the GPU worker binary.
const GPUWorkerName = "cyxwiz-cuda-worker"

// lookWorker finds the GPU worker next to this program, then on PATH.
func lookWorker() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), GPUWorkerName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(GPUWorkerName); err == nil {
		return p
	}
	return ""
}
