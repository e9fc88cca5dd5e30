package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/market"
)

// Executor runs train jobs: in-process on the CPU, or on a GPU in the
// worker binary (a separate process, so that a driver fault ends the
// worker and not the daemon).
type Executor struct {
	worker  string
	devices chan int // free GPU indexes: one GPU job per GPU at a time
	log     *slog.Logger
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// Worker is the path of the GPU worker binary; empty when this machine
	// trains on the CPU only.
	Worker string
	// GPUs is how many GPUs the worker may use (indexes 0 to GPUs-1); GPU
	// jobs beyond that wait for one to be free.
	GPUs   int
	Logger *slog.Logger
}

// NewExecutor returns a train executor.
func NewExecutor(cfg ExecutorConfig) *Executor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{worker: cfg.Worker, log: cfg.Logger, devices: make(chan int, max(1, cfg.GPUs))}
	for i := range max(1, cfg.GPUs) {
		e.devices <- i
	}
	return e
}

// Kind implements compute.Executor.
func (e *Executor) Kind() string { return market.KindTrain }

// Close implements compute.Executor.
func (e *Executor) Close(context.Context) error { return nil }

// Run implements compute.Executor. The job's Program is its train section
// as JSON; its dataset is InDir/dataset.
func (e *Executor) Run(ctx context.Context, job compute.Job) (compute.Outcome, error) {
	var spec market.TrainSpec
	if err := json.Unmarshal(job.Program, &spec); err != nil {
		return compute.Outcome{Reason: compute.ReasonBadProgram, Detail: err.Error(), ExitCode: -1}, nil
	}
	spec.Normalize()
	if _, err := spec.Model.Shapes(); err != nil {
		return compute.Outcome{Reason: compute.ReasonBadProgram, Detail: err.Error(), ExitCode: -1}, nil
	}
	if job.Wall > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, job.Wall)
		defer cancel()
	}
	start := time.Now()
	out := compute.Outcome{StartedAt: start}
	dataDir := filepath.Join(job.InDir, market.TrainDatasetDir)
	var err error
	if job.GPUs > 0 {
		if e.worker == "" {
			return out, errors.New("train: the job asks for a GPU and this node has no GPU worker")
		}
		var device int
		select {
		case device = <-e.devices:
		case <-ctx.Done():
			return compute.Outcome{StartedAt: start, Reason: compute.ReasonCancelled, ExitCode: -1, Detail: "waiting for a GPU"}, nil
		}
		out.Metrics, err = e.runWorker(ctx, job, dataDir, device)
		e.devices <- device
	} else {
		var res Result
		res, err = runInProcess(ctx, Params{Spec: spec, DataDir: dataDir, OutDir: job.OutDir, Backend: NewCPU(),
			Log: job.Stdout, Metrics: job.Metrics, MaxDataBytes: memoryBytes(job)})
		out.Metrics = res.Final
	}
	out.Wall = time.Since(start)
	if err != nil {
		out.ExitCode = 1
		out.Detail = err.Error()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			out.Reason, out.ExitCode = compute.ReasonWallTime, -1
		case errors.Is(err, context.Canceled):
			out.Reason, out.ExitCode = compute.ReasonCancelled, -1
		case errors.Is(err, ErrDiverged):
			out.Reason = compute.ReasonDiverged
		case errors.Is(err, ErrDataset):
			out.Reason = compute.ReasonBadInput
		default:
			out.Reason = compute.ReasonExit
		}
		if job.Stderr != nil {
			fmt.Fprintf(job.Stderr, "train: %v\n", err)
		}
	}
	return out, nil
}

// runInProcess trains in the daemon's process; a panic (a bug met by some
// input) fails the job instead of the daemon.
func runInProcess(ctx context.Context, p Params) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: internal error: %v", r)
		}
	}()
	return Run(ctx, p)
}

// memoryBytes is the job's memory limit in bytes, 0 when it sets none.
func memoryBytes(job compute.Job) int64 { return int64(job.MemoryMiB) << 20 }

// Worker exit codes, so that the daemon can tell a failure's kind.
const (
	workerExitFailed   = 1
	workerExitUsage    = 2
	workerExitDiverged = 3
	workerExitDataset  = 4
)

// runWorker trains on a GPU in the worker process: metrics come back as
// JSON lines on its stdout, log lines on its stderr.
func (e *Executor) runWorker(ctx context.Context, job compute.Job, dataDir string, device int) (map[string]float64, error) {
	specPath := filepath.Join(job.OutDir, "..", "train-spec.json")
	if err := os.WriteFile(specPath, job.Program, 0o600); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	cmd := exec.CommandContext(ctx, e.worker, "train", "-spec", specPath, "-data", dataDir, "-out", job.OutDir, "-device", fmt.Sprint(device),
		"-max-data-bytes", fmt.Sprint(memoryBytes(job)))
	// The worker gets a process group of its own, so that a kill reaches
	// anything it started; WaitDelay bounds the wait for their pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if stderr.Len() < 64<<10 {
			stderr.Write(p)
		}
		if job.Stdout != nil {
			job.Stdout.Write(p)
		}
		return len(p), nil
	})
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("train: start the GPU worker: %w", err)
	}
	e.log.Info("GPU worker started", "job", job.ID, "pid", cmd.Process.Pid)
	final := relayMetrics(stdout, job.Metrics)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return final, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		mu.Lock()
		detail := lastLine(stderr.String())
		mu.Unlock()
		switch exit.ExitCode() {
		case workerExitDiverged:
			return final, fmt.Errorf("%w: %s", ErrDiverged, detail)
		case workerExitDataset:
			return final, fmt.Errorf("%w: %s", ErrDataset, detail)
		}
		return final, fmt.Errorf("GPU worker: %v: %s", err, detail)
	}
	return final, err
}

// relayMetrics copies the worker's metric lines to the job's metrics
// stream and returns the last epoch's figures.
func relayMetrics(r io.Reader, live io.Writer) map[string]float64 {
	var final map[string]float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		if live != nil {
			live.Write(append(sc.Bytes(), '\n'))
		}
		if m.Kind == "epoch" {
			final = m.final()
		}
	}
	io.Copy(io.Discard, r)
	return final
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
