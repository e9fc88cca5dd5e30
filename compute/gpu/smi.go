package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// smiArgs asks nvidia-smi for one CSV line per GPU, in the order of smiFields.
var smiArgs = []string{
	"--query-gpu=index,uuid,name,memory.total,memory.free,compute_cap,driver_version",
	"--format=csv,noheader,nounits",
}

// smiFields is the number of fields smiArgs asks for.
const smiFields = 7

// Exit codes with which nvidia-smi says that there is no GPU to report
// rather than that something failed.
const (
	smiExitNoDevices     = 6  // no GPU found
	smiExitNoDriver      = 9  // the driver is not loaded
	smiExitNoLibrary     = 12 // libnvidia-ml is missing
	smiOutputNoDevices   = "No devices were found"
	smiCUDAVersionMarker = "CUDA Version:"
)

// detectSMI runs nvidia-smi if it is on PATH and parses its report. Without
// nvidia-smi, or when it says there is no driver or no GPU, it returns nil
// and no error.
func detectSMI(ctx context.Context) ([]GPU, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, detectTimeout)
	defer cancel()
	out, err := runSMI(ctx, path, smiArgs...)
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			switch exitErr.ExitCode() {
			case smiExitNoDevices, smiExitNoDriver, smiExitNoLibrary:
				return nil, nil
			}
		}
		return nil, err
	}
	if strings.Contains(string(out), smiOutputNoDevices) {
		return nil, nil
	}
	gpus, err := parseSMI(out)
	if err != nil {
		return nil, err
	}
	if len(gpus) == 0 {
		return nil, nil
	}
	// The query fields do not include the CUDA version; the banner of a
	// plain run does. Without it the GPUs are still worth reporting.
	if banner, err := runSMI(ctx, path); err == nil {
		cuda := parseCUDAVersion(banner)
		for i := range gpus {
			gpus[i].CUDA = cuda
		}
	}
	return gpus, nil
}

// runSMI runs nvidia-smi at path with args and returns its standard output.
// A failure's error carries the exit status and what nvidia-smi printed.
func runSMI(ctx context.Context, path string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("gpu: nvidia-smi: %w", ctxErr)
		}
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		if msg == "" {
			return nil, fmt.Errorf("gpu: nvidia-smi: %w", err)
		}
		return nil, fmt.Errorf("gpu: nvidia-smi: %w: %s", err, msg)
	}
	return stdout.Bytes(), nil
}

// parseSMI parses nvidia-smi's CSV answer to smiArgs, one GPU a line.
// Memory is in MiB. A free memory or compute capability that nvidia-smi
// cannot tell ("[N/A]") is left zero or empty; anything else that does not
// parse is an error naming the line and field.
func parseSMI(out []byte) ([]GPU, error) {
	var gpus []GPU
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		g, err := parseSMILine(line)
		if err != nil {
			return nil, fmt.Errorf("gpu: nvidia-smi output line %d %q: %w", i+1, line, err)
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

func parseSMILine(line string) (GPU, error) {
	f := strings.Split(line, ",")
	if len(f) < smiFields {
		return GPU{}, fmt.Errorf("got %d fields, want %d", len(f), smiFields)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	// Only the name could hold a comma: it takes every field between the
	// UUID and the last four.
	n := len(f)
	g := GPU{
		UUID:   f[1],
		Name:   strings.Join(f[2:n-4], ", "),
		Driver: f[n-1],
	}
	var err error
	if g.Index, err = strconv.Atoi(f[0]); err != nil || g.Index < 0 {
		return GPU{}, fmt.Errorf("index %q: not a GPU index", f[0])
	}
	if g.UUID == "" || g.Name == "" || g.Driver == "" {
		return GPU{}, errors.New("empty uuid, name or driver_version")
	}
	if g.MemoryMiB, err = parseMiB(f[n-4]); err != nil || g.MemoryMiB <= 0 {
		return GPU{}, fmt.Errorf("memory.total %q: not a size in MiB", f[n-4])
	}
	if !notAvailable(f[n-3]) {
		if g.FreeMemoryMiB, err = parseMiB(f[n-3]); err != nil {
			return GPU{}, fmt.Errorf("memory.free %q: not a size in MiB", f[n-3])
		}
	}
	if !notAvailable(f[n-2]) {
		if _, _, err := parseCC(f[n-2]); err != nil {
			return GPU{}, err
		}
		g.ComputeCapability = f[n-2]
	}
	return g, nil
}

func parseMiB(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: not a size in MiB", s)
	}
	return v, nil
}

// notAvailable reports whether s is nvidia-smi's way of saying that it has no
// value, such as "[N/A]" or "[Not Supported]".
func notAvailable(s string) bool {
	return strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
}

// parseCUDAVersion finds "CUDA Version: 13.0" in the banner that a plain
// nvidia-smi run prints and returns "13.0", or "" if there is none.
func parseCUDAVersion(banner []byte) string {
	_, rest, ok := strings.Cut(string(banner), smiCUDAVersionMarker)
	if !ok {
		return ""
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return ""
	}
	v := strings.Trim(fields[0], "|")
	if _, _, err := parseCC(v); err != nil {
		return ""
	}
	return v
}
