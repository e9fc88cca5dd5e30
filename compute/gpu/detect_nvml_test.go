//go:build cgo && linux && nvml

package gpu

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestDetectNVMLNoLibrary(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "not-a-library.so")
	if err := os.WriteFile(notELF, []byte("not a shared library"), 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"missing", filepath.Join(t.TempDir(), "libnvidia-ml.so.1")},
		{"not a library", notELF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, err := detectNVML(context.Background(), nvml.New(nvml.WithLibraryPath(tt.path)))
			if err != nil || got != nil {
				t.Fatalf("detectNVML = %v, %v; want nil, nil", got, err)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("detectNVML took %v, want well under 1s", elapsed)
			}
		})
	}
}

// fakeResult is what TestFakeNVMLChild reports for one detection.
type fakeResult struct {
	GPUs []GPU
	Err  string
}

// TestDetectNVMLFake runs detection against testdata/fakenvml.c built as a
// shared library. Each mode runs in a child process: a process that has
// loaded one libnvidia-ml keeps its functions bound to it.
func TestDetectNVMLFake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a shared library with the C compiler")
	}
	cc := strings.Fields(goEnv(t, "CC"))
	if len(cc) == 0 {
		t.Skip("no C compiler")
	}
	if _, err := exec.LookPath(cc[0]); err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	src := filepath.Join("testdata", "fakenvml.c")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no fake NVML source: %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	build := exec.Command(cc[0], append(cc[1:], "-shared", "-fPIC", "-o", lib, src)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake NVML: %v\n%s", err, out)
	}
	h100 := func(i int, uuid string) GPU {
		return GPU{Index: i, UUID: uuid, Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, FreeMemoryMiB: 81000, ComputeCapability: "9.0", Driver: "580.65.06", CUDA: "13.0"}
	}
	tests := []struct {
		mode string
		want fakeResult
	}{
		{"ok", fakeResult{GPUs: []GPU{
			h100(0, "GPU-00000000-0000-0000-0000-000000000000"),
			h100(1, "GPU-00000001-0000-0000-0000-000000000000"),
		}}},
		{"empty", fakeResult{}},
		{"nodriver", fakeResult{}},
		{"fail", fakeResult{Err: "gpu: nvml init: Unknown Error"}},
		{"lost", fakeResult{Err: "gpu: nvml GPU 1: memory: GPU is lost"}},
		{"hang", fakeResult{Err: "gpu: nvml: context deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "result.json")
			child := exec.Command(os.Args[0], "-test.run=^TestFakeNVMLChild$", "-test.count=1")
			child.Env = append(os.Environ(), "FAKE_NVML_LIB="+lib, "FAKE_NVML_MODE="+tt.mode, "FAKE_NVML_OUT="+out)
			start := time.Now()
			if b, err := child.CombinedOutput(); err != nil {
				t.Fatalf("child: %v\n%s", err, b)
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("child took %v, want well under 3s", elapsed)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("read child result: %v", err)
			}
			var got []fakeResult
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("parse child result: %v", err)
			}
			if len(got) == 0 {
				t.Fatal("child reported no detections")
			}
			for i, g := range got {
				if !reflect.DeepEqual(g, tt.want) {
					t.Errorf("detection %d = %+v, want %+v", i, g, tt.want)
				}
			}
		})
	}
}

// TestFakeNVMLChild is the child process of TestDetectNVMLFake: it detects
// through the library in FAKE_NVML_LIB three times at once, giving up after
// a second, and writes the results to FAKE_NVML_OUT.
func TestFakeNVMLChild(t *testing.T) {
	lib, out := os.Getenv("FAKE_NVML_LIB"), os.Getenv("FAKE_NVML_OUT")
	if lib == "" || out == "" {
		t.Skip("runs only as the child of TestDetectNVMLFake")
	}
	nvmlLib := nvml.New(nvml.WithLibraryPath(lib))
	results := make([]fakeResult, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			gpus, err := detectNVML(ctx, nvmlLib)
			results[i].GPUs = gpus
			if err != nil {
				results[i].Err = err.Error()
			}
		}()
	}
	wg.Wait()
	b, err := json.Marshal(results)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatalf("write result: %v", err)
	}
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Skipf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}
