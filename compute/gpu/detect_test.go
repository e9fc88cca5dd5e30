package gpu

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestDetect runs Detect on this machine. It must not fail where there is no
// GPU. CYXWIZ_GPU_EXPECT=1 makes it require at least one well-formed GPU and
// CYXWIZ_GPU_EXPECT=0 none; either way it logs what it found as JSON:
//
//	CYXWIZ_GPU_EXPECT=1 go test -count=1 -v -run '^TestDetect$' ./compute/gpu
func TestDetect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	gpus, err := Detect(ctx)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	js, err := json.MarshalIndent(gpus, "", "  ")
	if err != nil {
		t.Fatalf("json.MarshalIndent: %v", err)
	}
	t.Logf("Detect took %v: %s\n%s", elapsed, Summary(gpus), js)
	if len(gpus) == 0 && elapsed > 2*time.Second {
		t.Errorf("Detect took %v to find no GPU, want well under 2s", elapsed)
	}
	switch os.Getenv("CYXWIZ_GPU_EXPECT") {
	case "1":
		if len(gpus) == 0 {
			t.Fatal("Detect found no GPU, want at least one (CYXWIZ_GPU_EXPECT=1)")
		}
		for i, g := range gpus {
			checkGPU(t, i, g)
		}
	case "0":
		if len(gpus) != 0 {
			t.Fatalf("Detect found %d GPUs, want none (CYXWIZ_GPU_EXPECT=0)", len(gpus))
		}
	}
}

// checkGPU checks that the i-th detected GPU has every field filled in.
func checkGPU(t *testing.T, i int, g GPU) {
	t.Helper()
	if g.Index != i {
		t.Errorf("GPU %d: Index = %d, want %d", i, g.Index, i)
	}
	if g.UUID == "" || g.Name == "" || g.Driver == "" || g.CUDA == "" {
		t.Errorf("GPU %d: empty UUID, Name, Driver or CUDA: %+v", i, g)
	}
	if g.MemoryMiB <= 0 || g.FreeMemoryMiB < 0 || g.FreeMemoryMiB > g.MemoryMiB {
		t.Errorf("GPU %d: memory %d MiB, free %d MiB, want 0 <= free <= total, total > 0", i, g.MemoryMiB, g.FreeMemoryMiB)
	}
	if _, _, err := parseCC(g.ComputeCapability); err != nil {
		t.Errorf("GPU %d: %v", i, err)
	}
	if _, _, err := parseCC(g.CUDA); err != nil {
		t.Errorf("GPU %d: CUDA version: %v", i, err)
	}
}
