package wasm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/computetest"
)

// buildGuest compiles testdata/guest for wasip1.
func buildGuest(t testing.TB) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build guest: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestConformance(t *testing.T) {
	guest := buildGuest(t)
	e, err := New(Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	prog := func(args ...string) computetest.Program { return computetest.Program{Code: guest, Args: args} }
	payload := map[string][]byte{"data": []byte("payload")}
	computetest.Run(t, e, computetest.Programs{
		Hello:       computetest.Program{Code: TinyModule()},
		Greeting:    "hello",
		Output:      computetest.Program{Code: guest, Args: []string{"copy", "/in/data", "/out/result"}, Inputs: payload},
		Outputs:     map[string][]byte{"result": []byte("payload")},
		Fail:        computetest.Failure{Program: prog("exit", "3"), Reason: compute.ReasonExit, ExitCode: 3},
		Loop:        prog("loop"),
		Alloc:       prog("alloc", "256"),
		ReadOutside: computetest.Failure{Program: prog("read", "/etc/hostname"), Reason: compute.ReasonExit, ExitCode: 3},
		Lines:       prog("lines", "50"),
		Line:        "line ",
		Garbage:     []byte("#!/bin/sh\necho not wasm\n"),
		Staged: computetest.Staged{Spec: []byte(`{"module":"tiny"}`),
			Content: map[string]map[string][]byte{"tiny": {"": TinyModule()}}},
		Sandbox: &computetest.Sandbox{
			WriteInput: prog("write", "/in/data"),
			Dial:       prog("dial", "127.0.0.1:9"),
			Env:        prog("env", "CYXWIZ_TEST"),
		},
	})
}

// TestDeterministic: two runs of the same job print the same clock value.
func TestDeterministic(t *testing.T) {
	guest := buildGuest(t)
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	var outs []string
	for range 2 {
		var out bytes.Buffer
		o, err := e.Run(context.Background(), compute.Job{Program: guest, Args: []string{"clock"}, MemoryMiB: 64, OutBytes: 64 << 20, Wall: 10 * time.Second, Stdout: &out})
		if err != nil || !o.OK() {
			t.Fatalf("%+v %v", o, err)
		}
		outs = append(outs, out.String())
	}
	if outs[0] != outs[1] {
		t.Fatalf("clock differs between runs: %q vs %q", outs[0], outs[1])
	}
}

// TestCompileCache: the second run of a module does not compile it again.
func TestCompileCache(t *testing.T) {
	guest := buildGuest(t)
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	job := compute.Job{Program: guest, MemoryMiB: 64, OutBytes: 64 << 20, Wall: 10 * time.Second}
	first, err := e.Run(context.Background(), job)
	if err != nil || first.CompileTime == 0 {
		t.Fatalf("first run %+v %v: want a compile", first, err)
	}
	second, err := e.Run(context.Background(), job)
	if err != nil || second.CompileTime != 0 {
		t.Fatalf("second run %+v %v: want no compile", second, err)
	}
}
