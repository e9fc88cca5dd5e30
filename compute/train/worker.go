package train

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// ServeWorker is the main function of a training worker: `train -spec
// FILE -data DIR -out DIR -device N -max-data-bytes N -memory-limit N`
// trains on the backend that newBackend opens, writing metrics as JSON
// lines to stdout and log lines to stderr, and returns the process's exit
// code. The daemon's Executor runs it, for the CPU (ServeWorkerIfAsked)
// and in the GPU worker binary.
//
// With a memory limit, the worker's garbage collector works to stay below
// it, and the worker asks the system's out-of-memory killer to pick it
// first, before the daemon that started it.
func ServeWorker(ctx context.Context, args []string, stdout, stderr io.Writer, newBackend func(device int) (Backend, error)) int {
	if len(args) == 0 || args[0] != "train" {
		fmt.Fprintln(stderr, "usage: train -spec FILE -data DIR -out DIR [-device N] [-max-data-bytes N] [-memory-limit N]")
		return workerExitUsage
	}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specPath := fs.String("spec", "", "the train section of the job spec, as JSON")
	data := fs.String("data", "", "the dataset folder or file")
	out := fs.String("out", "", "the output folder")
	device := fs.Int("device", 0, "the GPU to use")
	maxData := fs.Int64("max-data-bytes", 0, "the most a dataset file may expand to (0: no limit of the job's)")
	memLimit := fs.Int64("memory-limit", 0, "the resident memory the daemon lets this worker use, in bytes (0: none)")
	if err := fs.Parse(args[1:]); err != nil || *specPath == "" || *data == "" || *out == "" {
		fmt.Fprintln(stderr, "usage: train -spec FILE -data DIR -out DIR [-device N] [-max-data-bytes N] [-memory-limit N]")
		return workerExitUsage
	}
	if *memLimit > 0 {
		limitMemory(*memLimit)
	}
	raw, err := os.ReadFile(*specPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return workerExitUsage
	}
	var spec trainspec.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		fmt.Fprintf(stderr, "spec: %v\n", err)
		return workerExitUsage
	}
	spec.Normalize()
	b, err := newBackend(*device)
	if err != nil {
		fmt.Fprintf(stderr, "open device %d: %v\n", *device, err)
		return workerExitFailed
	}
	defer b.Close()
	_, err = Run(ctx, Params{Spec: spec, DataDir: *data, OutDir: *out, Backend: b, Log: stderr, Metrics: stdout, MaxDataBytes: *maxData})
	if err == nil {
		err = backendErr(b)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrDiverged):
		fmt.Fprintln(stderr, err)
		return workerExitDiverged
	case errors.Is(err, ErrDataset):
		fmt.Fprintln(stderr, err)
		return workerExitDataset
	default:
		fmt.Fprintln(stderr, err)
		return workerExitFailed
	}
}

// limitMemory keeps the garbage collector below nine tenths of limit and
// makes this process the first the out-of-memory killer picks.
func limitMemory(limit int64) {
	debug.SetMemoryLimit(limit / 10 * 9)
	os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0) // Linux only; elsewhere it fails, harmlessly
}
