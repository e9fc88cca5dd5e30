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
	"github.com/cyxwiz/cyxwiz/internal/syncbuf"
)

// Program is a runnable program, the arguments that select a behaviour,
// and the files it finds under /in.
type Program struct {
	Code []byte
	Args []string
	// Inputs are the files placed under /in before it runs, by
	// slash-separated path.
	Inputs map[string][]byte
}

// Failure is a program that fails, and how its outcome says so.
type Failure struct {
	Program
	Reason   string
	ExitCode int
}

// Programs are what the suite runs. Each must behave as its comment says.
type Programs struct {
	// Hello succeeds and prints Greeting to stdout.
	Hello    Program
	Greeting string
	// Output succeeds and writes the files Outputs names, by path under
	// /out: each holds what Outputs gives, or anything but nothing where
	// that is nil.
	Output  Program
	Outputs map[string][]byte
	// Fail fails on its own, not by passing a limit.
	Fail Failure
	// Loop runs far longer than a second.
	Loop Program
	// Alloc needs far more memory than 32 MiB.
	Alloc Program
	// ReadOutside tries to read a host file outside /in, and fails as it
	// says when it cannot.
	ReadOutside Failure
	// Lines prints 50 lines that contain Line to stdout, and succeeds.
	Lines Program
	Line  string
	// Garbage is not a program at all.
	Garbage []byte
	// Staged is a job given as its spec section: staged from the content
	// it names, it behaves as Hello.
	Staged Staged
	// Sandbox holds the programs that only an executor of arbitrary code
	// can express; nil for one whose programs cannot try these things.
	Sandbox *Sandbox
}

// Sandbox are programs of arbitrary code that try to reach past their
// sandbox.
type Sandbox struct {
	// WriteInput tries to write into /in/data and exits 3 when it cannot.
	WriteInput Program
	// Dial tries to open a TCP connection and exits 3 when it cannot.
	Dial Program
	// Env prints the value of the variable CYXWIZ_TEST.
	Env Program
}

// Run runs the suite against exec.
func Run(t *testing.T, exec compute.Executor, p Programs) {
	ctx := context.Background()

	t.Run("hello", func(t *testing.T) {
		var out syncbuf.Buffer
		j := job(t, p.Hello)
		j.Stdout = &out
		o, err := exec.Run(ctx, j)
		if err != nil || !o.OK() || !strings.Contains(out.String(), p.Greeting) {
			t.Fatalf("outcome %+v, err %v, stdout %q; want %q in it", o, err, out.String(), p.Greeting)
		}
	})

	t.Run("inputs read-only, outputs written", func(t *testing.T) {
		j := job(t, p.Output)
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() {
			t.Fatalf("output: %+v, %v", o, err)
		}
		for name, want := range p.Outputs {
			got, err := os.ReadFile(filepath.Join(j.OutDir, filepath.FromSlash(name)))
			if err != nil || want != nil && !bytes.Equal(got, want) || want == nil && len(got) == 0 {
				t.Errorf("/out/%s = %.40q, %v; want %.40q", name, got, err, want)
			}
		}
		for name, want := range p.Output.Inputs {
			if got, _ := os.ReadFile(filepath.Join(j.InDir, filepath.FromSlash(name))); !bytes.Equal(got, want) {
				t.Errorf("input %s changed to %.40q", name, got)
			}
		}
	})

	t.Run("failure", func(t *testing.T) {
		o, err := exec.Run(ctx, job(t, p.Fail.Program))
		if err != nil || o.Reason != p.Fail.Reason || o.ExitCode != p.Fail.ExitCode {
			t.Fatalf("outcome %+v, %v; want %s, exit %d", o, err, p.Fail.Reason, p.Fail.ExitCode)
		}
		t.Logf("%s: %s", o.Reason, o.Detail)
	})

	t.Run("wall-time limit", func(t *testing.T) {
		j := job(t, p.Loop)
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
		o, err := exec.Run(cctx, job(t, p.Loop))
		if err != nil || o.Reason != compute.ReasonCancelled {
			t.Fatalf("outcome %+v, %v; want %s", o, err, compute.ReasonCancelled)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		j := job(t, p.Alloc)
		j.MemoryMiB = 32
		o, err := exec.Run(ctx, j)
		if err != nil || o.OK() || o.Reason != compute.ReasonMemory {
			t.Fatalf("outcome %+v, %v; want %s", o, err, compute.ReasonMemory)
		}
	})

	t.Run("no access outside /in", func(t *testing.T) {
		o, err := exec.Run(ctx, job(t, p.ReadOutside.Program))
		if err != nil || o.Reason != p.ReadOutside.Reason || o.ExitCode != p.ReadOutside.ExitCode {
			t.Fatalf("outcome %+v, %v; want %s, exit %d (could not read)", o, err, p.ReadOutside.Reason, p.ReadOutside.ExitCode)
		}
		t.Logf("%s: %s", o.Reason, o.Detail)
	})

	t.Run("output streams while running", func(t *testing.T) {
		var out syncbuf.Buffer
		j := job(t, p.Lines)
		j.Stdout = &out
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() {
			t.Fatalf("outcome %+v, %v", o, err)
		}
		if n := countLines(out.String(), p.Line); n != 50 {
			t.Fatalf("saw %d lines with %q, want 50:\n%s", n, p.Line, out.String())
		}
	})

	t.Run("bad program", func(t *testing.T) {
		// An executor may also return an error: the program never started.
		if o, _ := exec.Run(ctx, job(t, Program{Code: p.Garbage})); o.OK() || o.Reason != compute.ReasonBadProgram {
			t.Fatalf("outcome %+v; want %s", o, compute.ReasonBadProgram)
		}
	})

	t.Run("concurrent jobs", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for range 8 {
			j := job(t, p.Hello)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out syncbuf.Buffer
				j.Stdout = &out
				o, err := exec.Run(ctx, j)
				if err != nil || !o.OK() || !strings.Contains(out.String(), p.Greeting) {
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

	runStage(t, exec, p.Staged, p.Greeting)
	if p.Sandbox != nil {
		runSandbox(t, exec, *p.Sandbox)
	}
}

// runSandbox runs the programs that try to reach past their sandbox.
func runSandbox(t *testing.T, exec compute.Executor, p Sandbox) {
	ctx := context.Background()

	t.Run("no writes into /in", func(t *testing.T) {
		w := p.WriteInput
		w.Inputs = map[string][]byte{"data": []byte("payload")}
		j := job(t, w)
		if o, err := exec.Run(ctx, j); err != nil || o.OK() {
			t.Fatalf("write into /in: %+v, %v; want a failure", o, err)
		}
		if got, _ := os.ReadFile(filepath.Join(j.InDir, "data")); string(got) != "payload" {
			t.Fatalf("input changed to %q", got)
		}
	})

	t.Run("no network", func(t *testing.T) {
		o, err := exec.Run(ctx, job(t, p.Dial))
		if err != nil || o.ExitCode != 3 {
			t.Fatalf("outcome %+v, %v; want exit 3 (could not dial)", o, err)
		}
	})

	t.Run("environment", func(t *testing.T) {
		var out syncbuf.Buffer
		j := job(t, p.Env)
		j.Env = map[string]string{"CYXWIZ_TEST": "value-42"}
		j.Stdout = &out
		if o, err := exec.Run(ctx, j); err != nil || !o.OK() || strings.TrimSpace(out.String()) != "value-42" {
			t.Fatalf("outcome %+v, %v, stdout %q", o, err, out.String())
		}
	})
}

// job is a run of prog with folders of its own: /in holding its inputs,
// and an empty /out.
func job(t *testing.T, prog Program) compute.Job {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{in, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range prog.Inputs {
		path := filepath.Join(in, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return compute.Job{ID: t.Name(), Program: prog.Code, Args: prog.Args, InDir: in, OutDir: out,
		MemoryMiB: 64, OutBytes: 64 << 20, Wall: 20 * time.Second}
}

// countLines counts the lines of s that contain sub.
func countLines(s, sub string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}
