//go:build cgo && linux && nvml

package gpu

import (
	"context"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlMu serializes NVML use: go-nvml keeps the loaded library and its
// function table in package state.
var nvmlMu sync.Mutex

// defaultNVML loads the driver's libnvidia-ml.so.1 on first use. One instance
// for the process means one dlopen, even when Init keeps failing.
var defaultNVML = nvml.New()

// Detect lists the machine's NVIDIA GPUs through NVML, which it loads from
// the driver at run time and shuts down after reading. Without the library or
// a loaded driver it returns nil and no error. It gives up when ctx ends or
// after ten seconds; it never panics.
func Detect(ctx context.Context) ([]GPU, error) {
	return detectNVML(ctx, defaultNVML)
}

// detectNVML runs readNVML on lib, returning early when ctx ends. NVML calls
// cannot be interrupted: a late reading finishes in the background.
func detectNVML(ctx context.Context, lib nvml.Interface) ([]GPU, error) {
	ctx, cancel := context.WithTimeout(ctx, detectTimeout)
	defer cancel()
	type result struct {
		gpus []GPU
		err  error
	}
	done := make(chan result, 1)
	go func() {
		gpus, err := readNVML(lib)
		done <- result{gpus, err}
	}()
	select {
	case r := <-done:
		return r.gpus, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("gpu: nvml: %w", ctx.Err())
	}
}

// readNVML initializes NVML through lib, reads every GPU and shuts NVML down.
func readNVML(lib nvml.Interface) (gpus []GPU, err error) {
	nvmlMu.Lock()
	defer nvmlMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			gpus, err = nil, fmt.Errorf("gpu: nvml panicked: %v", r)
		}
	}()

	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		return nil, nil
	default:
		return nil, fmt.Errorf("gpu: nvml init: %w", ret)
	}
	// A failed shutdown changes nothing about what was read.
	defer lib.Shutdown()

	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: nvml device count: %w", ret)
	}
	if count == 0 {
		return nil, nil
	}
	driver, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: nvml driver version: %w", ret)
	}
	cudaVersion, ret := lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: nvml CUDA version: %w", ret)
	}
	for i := 0; i < count; i++ {
		g, err := readDevice(lib, i)
		if err != nil {
			return nil, err
		}
		g.Driver = driver
		g.CUDA = formatCUDAVersion(cudaVersion)
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// readDevice reads the GPU with the given NVML index.
func readDevice(lib nvml.Interface, index int) (GPU, error) {
	g := GPU{Index: index}
	dev, ret := lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("gpu: nvml GPU %d: handle: %w", index, ret)
	}
	if g.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("gpu: nvml GPU %d: uuid: %w", index, ret)
	}
	if g.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("gpu: nvml GPU %d: name: %w", index, ret)
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("gpu: nvml GPU %d: memory: %w", index, ret)
	}
	g.MemoryMiB = int64(mem.Total >> 20)
	g.FreeMemoryMiB = int64(mem.Free >> 20)
	major, minor, ret := dev.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("gpu: nvml GPU %d: compute capability: %w", index, ret)
	}
	g.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	return g, nil
}
