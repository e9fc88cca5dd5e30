package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
)

// benchRun runs one job of the guest per iteration, with the module
// compiled before the clock starts.
func benchRun(b *testing.B, program []byte, args ...string) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	in, out := b.TempDir(), b.TempDir()
	if err := os.WriteFile(filepath.Join(in, "data"), []byte("payload\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	job := compute.Job{Program: program, Args: args, InDir: in, OutDir: out, MemoryMiB: 64, OutBytes: 64 << 20, Wall: time.Minute}
	if o, err := e.Run(context.Background(), job); err != nil || !o.OK() {
		b.Fatalf("warm-up: %+v, %v", o, err)
	}
	b.ResetTimer()
	for range b.N {
		os.Remove(filepath.Join(out, "result"))
		if o, err := e.Run(context.Background(), job); err != nil || !o.OK() {
			b.Fatalf("%+v, %v", o, err)
		}
	}
}

// BenchmarkCPUBoundGuest is a guest that computes for a while, then reads
// an input and writes an output: the sandbox's cost on real work.
func BenchmarkCPUBoundGuest(b *testing.B) {
	benchRun(b, buildGuest(b), "spin", "20", "/in/data", "/out/result")
}

// BenchmarkTinyModule is the executor's own cost per job.
func BenchmarkTinyModule(b *testing.B) {
	benchRun(b, TinyModule())
}
