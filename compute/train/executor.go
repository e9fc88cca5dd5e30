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
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// Executor runs train jobs, each in a worker process of its own with a
// memory limit: the CPU worker (this program, started again as a worker),
// or the GPU worker binary. A job that outgrows its memory ends its worker,
// never the daemon, and fails as memory.
type Executor struct {
	cpu     Worker
	gpu     string
	devices chan int // free GPU indexes: one GPU job per GPU at a time
	log     *slog.Logger
}

// Worker is how to start a training worker process: a program, and the
// environment variables that make it one (see ServeWorkerIfAsked).
type Worker struct {
	Path string
	Env  []string
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// CPUWorker starts a worker that trains on the CPU; the zero value
	// uses this program (SelfWorker).
	CPUWorker Worker
	// Worker is the path of the GPU worker binary; empty when this machine
	// trains on the CPU only.
	Worker string
	// GPUs is how many GPUs the worker may use (indexes 0 to GPUs-1); GPU
	// jobs beyond that wait for one to be free.
	GPUs   int
	Logger *slog.Logger
}

// workerEnv marks a process started as a CPU training worker.
const workerEnv = "CYXWIZ_TRAIN_WORKER"

// SelfWorker is this program started again as a CPU worker: it must call
// ServeWorkerIfAsked first thing in main (tests: in TestMain).
func SelfWorker() (Worker, error) {
	self, err := os.Executable()
	if err != nil {
		return Worker{}, fmt.Errorf("train: find this program for its CPU worker: %w", err)
	}
	return Worker{Path: self, Env: []string{workerEnv + "=1"}}, nil
}

// ServeWorkerIfAsked makes this process a CPU training worker when it was
// started as one (see SelfWorker): it trains the job its arguments name
// and exits. Otherwise it returns at once.
func ServeWorkerIfAsked() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	os.Exit(ServeWorker(context.Background(), os.Args[1:], os.Stdout, os.Stderr,
		func(int) (Backend, error) { return NewCPU(), nil }))
}

// Memory a worker may use beyond the job's memory_mib: the trainer's
// runtime (trainspec.TrainerOverheadMiB) and, on a GPU, what the CUDA driver
// keeps in host memory.
const gpuDriverMiB = 1024

// NewExecutor returns a train executor.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CPUWorker.Path == "" {
		w, err := SelfWorker()
		if err != nil {
			return nil, err
		}
		cfg.CPUWorker = w
	}
	e := &Executor{cpu: cfg.CPUWorker, gpu: cfg.Worker, log: cfg.Logger, devices: make(chan int, max(1, cfg.GPUs))}
	for i := range max(1, cfg.GPUs) {
		e.devices <- i
	}
	return e, nil
}

// Kind implements compute.Executor.
func (e *Executor) Kind() string { return trainspec.Kind }

// Close implements compute.Executor.
func (e *Executor) Close(context.Context) error { return nil }

// Run implements compute.Executor. The job's Program is its train section
// as JSON; its dataset is InDir/dataset.
func (e *Executor) Run(ctx context.Context, job compute.Job) (compute.Outcome, error) {
	var spec trainspec.Spec
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
	dataDir := filepath.Join(job.InDir, trainspec.DatasetDir)
	if reason, detail := checkMemory(spec, dataDir, job); reason != "" {
		out.Reason, out.Detail, out.ExitCode = reason, detail, 1
		return out, nil
	}
	w := worker{path: e.cpu.Path, env: e.cpu.Env, limit: int64(job.MemoryMiB+trainspec.TrainerOverheadMiB) << 20, cpus: job.CPU}
	var err error
	if job.GPUs > 0 {
		if e.gpu == "" {
			return out, errors.New("train: the job asks for a GPU and this node has no GPU worker")
		}
		w.path, w.env = e.gpu, nil
		w.limit += gpuDriverMiB << 20
		select {
		case w.device = <-e.devices:
		case <-ctx.Done():
			return compute.Outcome{StartedAt: start, Reason: compute.ReasonCancelled, ExitCode: -1, Detail: "waiting for a GPU"}, nil
		}
		out.Metrics, out.PeakMemory, err = e.runWorker(ctx, job, dataDir, w)
		e.devices <- w.device
	} else {
		out.Metrics, out.PeakMemory, err = e.runWorker(ctx, job, dataDir, w)
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
		case errors.Is(err, errWorkerMemory):
			out.Reason, out.ExitCode = compute.ReasonMemory, -1
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

// checkMemory measures the dataset and refuses a job whose estimated peak
// memory is over its limit, before any worker starts.
func checkMemory(spec trainspec.Spec, dataDir string, job compute.Job) (reason, detail string) {
	size, err := MeasureDataset(dataDir, spec.Dataset, memoryBytes(job))
	if err != nil {
		if errors.Is(err, ErrDataset) {
			return compute.ReasonBadInput, err.Error()
		}
		return compute.ReasonExit, err.Error()
	}
	est, err := spec.EstimateMemory(size)
	if err != nil {
		return compute.ReasonBadProgram, err.Error()
	}
	if limit := memoryBytes(job); limit > 0 && est.Total() > limit {
		return compute.ReasonMemory, fmt.Sprintf("needs an estimated %s, more than its %d MiB memory limit", est, job.MemoryMiB)
	}
	return "", ""
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

// errWorkerMemory: the worker outgrew its memory limit and was stopped.
var errWorkerMemory = errors.New("memory")

// worker is one worker process to start.
type worker struct {
	path   string
	env    []string // added to this process's environment
	device int
	limit  int64 // bytes of resident memory the worker may use
	cpus   int   // threads it may run (0: as many as it likes)
}

// runWorker trains in a worker process: metrics come back as JSON lines on
// its stdout, log lines on its stderr. Its resident memory is watched, and
// the worker stopped when it passes its limit.
func (e *Executor) runWorker(ctx context.Context, job compute.Job, dataDir string, w worker) (map[string]float64, int64, error) {
	final, peak, err := e.startWorker(ctx, job, dataDir, w)
	e.log.Info("train worker ended", "job", job.ID, "peak_memory_mib", peak>>20, "error", err)
	return final, peak, err
}

func (e *Executor) startWorker(ctx context.Context, job compute.Job, dataDir string, w worker) (final map[string]float64, peak int64, err error) {
	specPath := filepath.Join(job.OutDir, "..", "train-spec.json")
	if err := os.WriteFile(specPath, job.Program, 0o600); err != nil {
		return nil, 0, fmt.Errorf("train: %w", err)
	}
	cmd := exec.CommandContext(ctx, w.path, "train", "-spec", specPath, "-data", dataDir, "-out", job.OutDir,
		"-device", fmt.Sprint(w.device), "-max-data-bytes", fmt.Sprint(memoryBytes(job)), "-memory-limit", fmt.Sprint(w.limit))
	cmd.Env = append(os.Environ(), w.env...)
	if w.cpus > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", w.cpus), fmt.Sprintf("OPENBLAS_NUM_THREADS=%d", w.cpus))
	}
	// The worker gets a process group of its own, so that a kill reaches
	// anything it started; WaitDelay bounds the wait for their pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
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
		return nil, 0, fmt.Errorf("train: start the worker: %w", err)
	}
	e.log.Info("train worker started", "job", job.ID, "pid", cmd.Process.Pid, "memory_limit_mib", w.limit>>20)
	watch := watchMemory(cmd.Process.Pid, w.limit, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	final = relayMetrics(stdout, job.Metrics)
	err = cmd.Wait()
	peak, over := watch.stop()
	if over {
		return final, peak, fmt.Errorf("%w: used %s, more than its limit of %d MiB (memory_mib and %d MiB for the trainer)",
			errWorkerMemory, trainspec.FormatBytes(peak), w.limit>>20, (w.limit>>20)-int64(job.MemoryMiB))
	}
	if ctx.Err() != nil {
		return final, peak, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		mu.Lock()
		detail := lastLine(stderr.String())
		mu.Unlock()
		switch exit.ExitCode() {
		case workerExitDiverged:
			return final, peak, fmt.Errorf("%w: %s", ErrDiverged, detail)
		case workerExitDataset:
			return final, peak, fmt.Errorf("%w: %s", ErrDataset, detail)
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			// Killed by no one here: the system's out-of-memory killer,
			// which picks workers first (see ServeWorker).
			return final, peak, fmt.Errorf("%w: the worker was killed by the system (out of memory), peak %s", errWorkerMemory, trainspec.FormatBytes(peak))
		}
		if strings.Contains(detail, "out of memory") {
			return final, peak, fmt.Errorf("%w: %s", errWorkerMemory, detail)
		}
		return final, peak, fmt.Errorf("worker: %v: %s", err, detail)
	}
	return final, peak, err
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
