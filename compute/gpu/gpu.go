// Package gpu finds the NVIDIA GPUs of a machine for its capacity record.
//
// Detect runs nvidia-smi, which comes with every NVIDIA driver. Builds with
// the nvml tag and cgo on Linux (what `make build` produces) ask the driver
// through NVML instead (github.com/NVIDIA/go-nvml, loaded at run time); the
// tag keeps go-nvml's cgo, whose NVML header makes the C compiler print
// hundreds of deprecation warnings, out of a plain `go build`. A machine
// without a GPU, driver or driver library has no GPUs: Detect returns nil
// and no error. A driver that is present but fails gives an error that says
// what failed.
package gpu

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// detectTimeout bounds one detection. Starting NVML on a machine with many
// GPUs and no persistence daemon can take a few seconds.
const detectTimeout = 10 * time.Second

// GPU is one GPU as the driver reports it.
type GPU struct {
	// Index is the driver's index of the GPU, as nvidia-smi shows it.
	Index int `json:"index"`
	// UUID is the GPU's unique identifier, such as "GPU-5c8a...".
	UUID string `json:"uuid"`
	// Name is the product name, such as "NVIDIA H100 80GB HBM3".
	Name string `json:"name"`
	// MemoryMiB is the total memory.
	MemoryMiB int64 `json:"memory_mib"`
	// FreeMemoryMiB is the memory free when Detect ran.
	FreeMemoryMiB int64 `json:"free_memory_mib"`
	// ComputeCapability is the CUDA compute capability, such as "9.0".
	ComputeCapability string `json:"compute_capability"`
	// Driver is the driver version, such as "580.65.06".
	Driver string `json:"driver"`
	// CUDA is the highest CUDA version the driver supports, such as "13.0".
	CUDA string `json:"cuda"`
}

// Matches reports whether gpus holds at least count GPUs that each have at
// least minMemMiB of total memory and a compute capability of at least minCC,
// compared numerically ("10.0" is above "9.0"). An empty minCC accepts any
// GPU; a minCC that is not "major.minor" accepts none. A count of zero or
// less always matches.
func Matches(gpus []GPU, count, minMemMiB int, minCC string) bool {
	if count <= 0 {
		return true
	}
	n := 0
	for _, g := range gpus {
		if g.MemoryMiB < int64(minMemMiB) {
			continue
		}
		if minCC != "" {
			c, err := compareCC(g.ComputeCapability, minCC)
			if err != nil || c < 0 {
				continue
			}
		}
		n++
	}
	return n >= count
}

// Summary describes gpus on one line, with identical GPUs counted together,
// for example "2 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0); driver
// 580.65.06, CUDA 13.0". It says "no GPUs" for none.
func Summary(gpus []GPU) string {
	if len(gpus) == 0 {
		return "no GPUs"
	}
	type group struct {
		desc string
		n    int
	}
	var groups []*group
	byDesc := map[string]*group{}
	for _, g := range gpus {
		desc := fmt.Sprintf("%s (%d MiB, compute %s)", g.Name, g.MemoryMiB, g.ComputeCapability)
		if byDesc[desc] == nil {
			byDesc[desc] = &group{desc: desc}
			groups = append(groups, byDesc[desc])
		}
		byDesc[desc].n++
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprintf("%d x %s", g.n, g.desc)
	}
	s := strings.Join(parts, ", ")
	var versions []string
	if d := gpus[0].Driver; d != "" {
		versions = append(versions, "driver "+d)
	}
	if c := gpus[0].CUDA; c != "" {
		versions = append(versions, "CUDA "+c)
	}
	if len(versions) > 0 {
		s += "; " + strings.Join(versions, ", ")
	}
	return s
}

// compareCC compares two compute capabilities such as "9.0" and "10.0"
// numerically and returns -1, 0 or +1 as a is below, equal to or above b.
func compareCC(a, b string) (int, error) {
	aMajor, aMinor, err := parseCC(a)
	if err != nil {
		return 0, err
	}
	bMajor, bMinor, err := parseCC(b)
	if err != nil {
		return 0, err
	}
	if aMajor != bMajor {
		return cmp.Compare(aMajor, bMajor), nil
	}
	return cmp.Compare(aMinor, bMinor), nil
}

// parseCC parses a compute capability "major.minor"; a lone "major" means
// minor 0.
func parseCC(s string) (major, minor int, err error) {
	majorStr, minorStr, hasMinor := strings.Cut(strings.TrimSpace(s), ".")
	major, err = strconv.Atoi(majorStr)
	if err != nil || major < 0 {
		return 0, 0, fmt.Errorf("compute capability %q: want major.minor", s)
	}
	if hasMinor {
		minor, err = strconv.Atoi(minorStr)
		if err != nil || minor < 0 {
			return 0, 0, fmt.Errorf("compute capability %q: want major.minor", s)
		}
	}
	return major, minor, nil
}

// formatCUDAVersion turns NVML's CUDA version number, such as 12040, into
// "12.4"; zero or less gives "".
func formatCUDAVersion(v int) string {
	if v <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}
