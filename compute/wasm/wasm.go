// Package wasm runs WebAssembly jobs (WASI preview 1) in wazero: inputs
// read-only under /in, /out writable, no network, a memory cap, a wall-time
// limit, and a deterministic clock and random source. Compiled modules are
// cached in memory and, when a folder is given, on disk across restarts.
package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// ErrBadProgram: the program is not a WebAssembly module this executor runs.
var ErrBadProgram = errors.New("not a runnable WebAssembly module")

// Options configure an Executor.
type Options struct {
	// CacheDir keeps compiled modules on disk across restarts; "" keeps
	// them in memory only.
	CacheDir string
	// MaxModules bounds the compiled modules kept per memory limit.
	MaxModules int
	// MaxOutEntries bounds the files and folders one job may create in
	// /out (0: MaxOutEntries).
	MaxOutEntries int
}

// Executor runs wasm jobs. It is safe for concurrent use.
type Executor struct {
	cache      wazero.CompilationCache
	maxModules int
	maxEntries int

	mu       sync.Mutex
	runtimes map[uint32]*pool // by memory limit in pages
	closed   bool
}

// pool is a runtime for one memory limit with its compiled modules.
type pool struct {
	rt      wazero.Runtime
	mu      sync.Mutex
	modules map[[32]byte]wazero.CompiledModule
	order   [][32]byte // least recently used first
}

// New returns an executor.
func New(opts Options) (*Executor, error) {
	if opts.MaxModules <= 0 {
		opts.MaxModules = 32
	}
	if opts.MaxOutEntries <= 0 {
		opts.MaxOutEntries = MaxOutEntries
	}
	cache := wazero.NewCompilationCache()
	if opts.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm compilation cache: %w", err)
		}
		cache = c
	}
	return &Executor{cache: cache, maxModules: opts.MaxModules, maxEntries: opts.MaxOutEntries, runtimes: map[uint32]*pool{}}, nil
}

// Kind returns "wasm".
func (e *Executor) Kind() string { return "wasm" }

// Close closes every runtime and the compilation cache.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	var errs []error
	for _, p := range e.runtimes {
		errs = append(errs, p.rt.Close(ctx))
	}
	e.runtimes = map[uint32]*pool{}
	errs = append(errs, e.cache.Close(ctx))
	return errors.Join(errs...)
}

func (e *Executor) pool(ctx context.Context, pages uint32) (*pool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("wasm executor is closed")
	}
	if p, ok := e.runtimes[pages]; ok {
		return p, nil
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	p := &pool{rt: rt, modules: map[[32]byte]wazero.CompiledModule{}}
	e.runtimes[pages] = p
	return p, nil
}

// compiled returns the compiled module for program, compiling it on a miss.
func (p *pool) compiled(ctx context.Context, program []byte, max int) (wazero.CompiledModule, time.Duration, error) {
	sum := sha256.Sum256(program)
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.modules[sum]; ok {
		p.touch(sum)
		return m, 0, nil
	}
	start := time.Now()
	m, err := p.rt.CompileModule(ctx, program)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadProgram, err)
	}
	elapsed := time.Since(start)
	p.modules[sum] = m
	p.order = append(p.order, sum)
	for len(p.order) > max {
		old := p.order[0]
		p.order = p.order[1:]
		p.modules[old].Close(ctx)
		delete(p.modules, old)
	}
	return m, elapsed, nil
}

func (p *pool) touch(sum [32]byte) {
	for i, s := range p.order {
		if s == sum {
			p.order = append(append(p.order[:i:i], p.order[i+1:]...), sum)
			return
		}
	}
}

// Run runs a job to its end.
func (e *Executor) Run(ctx context.Context, job compute.Job) (compute.Outcome, error) {
	if job.MemoryMiB < 1 || job.MemoryMiB > 4096 {
		return compute.Outcome{}, fmt.Errorf("memory limit %d MiB is outside 1..4096", job.MemoryMiB)
	}
	if job.Wall <= 0 {
		return compute.Outcome{}, errors.New("wall-time limit is not set")
	}
	if job.OutBytes < 0 {
		return compute.Outcome{}, fmt.Errorf("output limit %d bytes is negative", job.OutBytes)
	}
	p, err := e.pool(ctx, uint32(job.MemoryMiB)*16) // 64 KiB pages
	if err != nil {
		return compute.Outcome{}, err
	}
	mod, compileTime, err := p.compiled(ctx, job.Program, e.maxModules)
	if err != nil {
		return compute.Outcome{Reason: compute.ReasonBadProgram, Detail: err.Error()}, err
	}
	if _, ok := mod.ExportedFunctions()["_start"]; !ok {
		err := fmt.Errorf("%w: it exports no _start function (build a WASI command, e.g. GOOS=wasip1)", ErrBadProgram)
		return compute.Outcome{Reason: compute.ReasonBadProgram, Detail: err.Error()}, err
	}

	fsCfg, q, closeFS := mounts(job, e.maxEntries)
	defer closeFS()
	stderr := &oomWatch{}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"program"}, job.Args...)...).
		WithFSConfig(fsCfg).
		WithStdout(writerOr(job.Stdout)).
		WithStderr(teeWriter{writerOr(job.Stderr), stderr})
	for k, v := range job.Env {
		cfg = cfg.WithEnv(k, v)
	}

	runCtx, cancel := context.WithTimeout(ctx, job.Wall)
	defer cancel()
	out := compute.Outcome{CompileTime: compileTime, StartedAt: time.Now()}
	inst, err := p.rt.InstantiateModule(runCtx, mod, cfg)
	out.Wall = time.Since(out.StartedAt)
	if inst != nil {
		inst.Close(context.Background())
	}
	classify(&out, err, stderr.seen(), job, ctx)
	if why := q.over(); why != "" && !out.OK() {
		out.Reason, out.Detail = compute.ReasonDisk, why
	}
	return out, nil
}

// mounts gives the guest /in read-only and /out writable within the job's
// disk limit, each contained in its folder (see sandboxFS).
func mounts(job compute.Job, maxEntries int) (wazero.FSConfig, *quota, func()) {
	q := newQuota(job.OutBytes, int64(maxEntries))
	cfg := wazero.NewFSConfig()
	var opened []*sandboxFS
	closeAll := func() {
		for _, s := range opened {
			s.close()
		}
	}
	for _, m := range []struct {
		dir, guest string
		quota      *quota
	}{{job.InDir, "/in", nil}, {job.OutDir, "/out", q}} {
		if m.dir == "" {
			continue
		}
		s := newSandboxFS(m.dir, m.quota)
		opened = append(opened, s)
		cfg = cfg.(sysfs.FSConfig).WithSysFSMount(s, m.guest)
	}
	return cfg, q, closeAll
}

// classify turns wazero's verdict into an Outcome.
func classify(out *compute.Outcome, err error, outOfMemory bool, job compute.Job, parent context.Context) {
	if err == nil {
		return
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case 0:
			return
		case sys.ExitCodeDeadlineExceeded:
			if parent.Err() != nil {
				out.Reason, out.Detail = compute.ReasonCancelled, "stopped: "+parent.Err().Error()
			} else {
				out.Reason, out.Detail = compute.ReasonWallTime, fmt.Sprintf("ran past its wall-time limit of %s", job.Wall)
			}
			out.ExitCode = -1
			return
		case sys.ExitCodeContextCanceled:
			out.Reason, out.Detail, out.ExitCode = compute.ReasonCancelled, "cancelled", -1
			return
		}
		out.ExitCode = int(exit.ExitCode())
		out.Reason, out.Detail = compute.ReasonExit, fmt.Sprintf("exit code %d", out.ExitCode)
		if outOfMemory {
			out.Reason, out.Detail = compute.ReasonMemory, fmt.Sprintf("ran out of its %d MiB memory limit", job.MemoryMiB)
		}
		return
	}
	out.ExitCode = -1
	msg := err.Error()
	switch {
	case strings.Contains(msg, "memory") && (strings.Contains(msg, "limit") || strings.Contains(msg, "exceeds")):
		out.Reason, out.Detail = compute.ReasonMemory, msg
	default:
		out.Reason, out.Detail = compute.ReasonTrap, msg
	}
}

func writerOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type teeWriter struct {
	a, b io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.b.Write(p)
	return t.a.Write(p)
}

// oomWatch notes whether the program reported running out of memory (Go
// and C runtimes print "out of memory" before they exit).
type oomWatch struct {
	mu  sync.Mutex
	oom bool
}

func (w *oomWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("out of memory")) {
		w.mu.Lock()
		w.oom = true
		w.mu.Unlock()
	}
	return len(p), nil
}

func (w *oomWatch) seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.oom
}
