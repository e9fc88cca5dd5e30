// Package computetest is the conformance suite of compute.Executor: every
// executor passes it, given programs of its own kind that behave as the
// suite describes.
package computetest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
)

// Program is a runnable program and the arguments that select a behaviour.
type Program struct {
	Code []byte
	Args []string
}

// Programs are what the suite runs. Each must behave as its comment says.
type Programs struct {
	// Hello prints "hello" to stdout and exits 0.
	Hello Program
	// Copy copies /in/data to /out/result.
	Copy Program
	// Exit3 exits with code 3.
	Exit3 Program
	// Loop never ends.
	Loop Program
	// Alloc tries to use far more memory than 32 MiB.
	Alloc Program
	// ReadOutside tries to read a host file outside /in and exits 3 when it cannot.
	ReadOutside Program
	// WriteInput tries to write into /in/data and exits 3 when it cannot.
	WriteInput Program
	// Dial tries to open a TCP connection and exits 3 when it cannot.
	Dial Program
	// Env prints the value of the variable CYXWIZ_TEST.
	Env Program
	// Lines prints 50 lines, "line 0" to "line 49".
	Lines Program
	// Garbage is not a program at all.
	Garbage []byte
}

// Run runs the suite against exec.
func Run(t *testing.T, exec compute.Executor, p Programs) {
	ctx := context.Background()
	job := func(prog Program) compute.Job {
		return compute.Job{ID: t.Name(), Program: prog.Code, Args: prog.Args, MemoryMiB: 64, OutBytes: 64 << 20, Wall: 20 * time.Second}
	}

	t.Run("hello", func(t *testing.T) {
		var out bytes.Buffer
		j := job(p.Hello)
		j.Stdout = &out
		o, err := exec.Run(ctx, j)
		if err != nil || !o.OK() || !strings.Contains(out.String(), "hello") {
			t.Fatalf("outcome %+v, err %v, stdout %q", o, err, out.String())
		}
	})

	t.Run("inputs read-only, outputs written", func(t *testing.T) {
		in, outDir := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(in, "data"), []byte("payload"), 0o644); err != nil {
			t.Fatal(err)
		}
		j := job(p.Copy)
		j.InDir = in
		j.OutDir = outDir
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() {
			t.Fatalf("copy: %+v, %v", o, err)
		}
		if got, _ := os.ReadFile(filepath.Join(outDir, "result")); string(got) != "payload" {
			t.Fatalf("/out/result = %q", got)
		}
		w := job(p.WriteInput)
		w.InDir = j.InDir
		if o, err := exec.Run(ctx, w); err != nil || o.OK() {
			t.Fatalf("write into /in: %+v, %v; want a failure", o, err)
		}
		if got, _ := os.ReadFile(filepath.Join(in, "data")); string(got) != "payload" {
			t.Fatalf("input changed to %q", got)
		}
	})

	t.Run("exit code", func(t *testing.T) {
		o, err := exec.Run(ctx, job(p.Exit3))
		if err != nil || o.ExitCode != 3 || o.Reason != compute.ReasonExit {
			t.Fatalf("outcome %+v, %v; want exit 3", o, err)
		}
	})

	t.Run("wall-time limit", func(t *testing.T) {
		j := job(p.Loop)
		j.Wall = 500 * time.Millisecond
		start := time.Now()
		o, err := exec.Run(ctx, j)
		if err != nil || o.Reason != compute.ReasonWallTime {
			t.Fatalf("outcome %+v, %v; want %s", o, err, compute.ReasonWallTime)
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the limit of 500ms stopped the job only after %s", time.Since(start))
		}
	})

	t.Run("cancellation", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, cancel)
		o, err := exec.Run(cctx, job(p.Loop))
		if err != nil || o.Reason != compute.ReasonCancelled {
			t.Fatalf("outcome %+v, %v; want %s", o, err, compute.ReasonCancelled)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		j := job(p.Alloc)
		j.MemoryMiB = 32
		o, err := exec.Run(ctx, j)
		if err != nil || o.OK() || o.Reason != compute.ReasonMemory {
			t.Fatalf("outcome %+v, %v; want %s", o, err, compute.ReasonMemory)
		}
	})

	t.Run("no access outside /in", func(t *testing.T) {
		o, err := exec.Run(ctx, job(p.ReadOutside))
		if err != nil || o.ExitCode != 3 {
			t.Fatalf("outcome %+v, %v; want exit 3 (could not read)", o, err)
		}
	})

	t.Run("no network", func(t *testing.T) {
		o, err := exec.Run(ctx, job(p.Dial))
		if err != nil || o.ExitCode != 3 {
			t.Fatalf("outcome %+v, %v; want exit 3 (could not dial)", o, err)
		}
	})

	t.Run("environment", func(t *testing.T) {
		var out bytes.Buffer
		j := job(p.Env)
		j.Env = map[string]string{"CYXWIZ_TEST": "value-42"}
		j.Stdout = &out
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() || strings.TrimSpace(out.String()) != "value-42" {
			t.Fatalf("outcome %+v, %v, stdout %q", o, err, out.String())
		}
	})

	t.Run("output streams while running", func(t *testing.T) {
		w := &lineCounter{}
		j := job(p.Lines)
		j.Stdout = w
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() {
			t.Fatalf("outcome %+v, %v", o, err)
		}
		if w.count() != 50 {
			t.Fatalf("saw %d lines, want 50", w.count())
		}
	})

	t.Run("bad program", func(t *testing.T) {
		j := job(Program{Code: p.Garbage})
		if o, err := exec.Run(ctx, j); err == nil || o.Reason != compute.ReasonBadProgram {
			t.Fatalf("outcome %+v, %v; want an error and %s", o, err, compute.ReasonBadProgram)
		}
	})

	t.Run("concurrent jobs", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				j := job(p.Hello)
				j.Stdout = &out
				o, err := exec.Run(ctx, j)
				if err != nil || !o.OK() || !strings.Contains(out.String(), "hello") {
					errs <- out.String()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("a concurrent job failed: %q", e)
		}
	})
}

type lineCounter struct {
	mu sync.Mutex
	n  int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.n += bytes.Count(p, []byte("\n"))
	l.mu.Unlock()
	return len(p), nil
}

func (l *lineCounter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
