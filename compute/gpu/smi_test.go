package gpu

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// smiH100x2 is what nvidia-smi prints for smiArgs on a two-H100 machine.
const smiH100x2 = `0, GPU-5c8a2f3e-1b7d-4e2a-9c61-0d3f8e7a6b51, NVIDIA H100 80GB HBM3, 81559, 81004, 9.0, 580.65.06
1, GPU-e1d24a90-77c3-4f0b-a2e8-6b5c9d13f720, NVIDIA H100 80GB HBM3, 81559, 80512, 9.0, 580.65.06
`

// smiBanner is the top of what a plain nvidia-smi run prints.
const smiBanner = `Tue Sep  9 10:21:07 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
`

var smiH100x2GPUs = []GPU{
	{Index: 0, UUID: "GPU-5c8a2f3e-1b7d-4e2a-9c61-0d3f8e7a6b51", Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, FreeMemoryMiB: 81004, ComputeCapability: "9.0", Driver: "580.65.06"},
	{Index: 1, UUID: "GPU-e1d24a90-77c3-4f0b-a2e8-6b5c9d13f720", Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, FreeMemoryMiB: 80512, ComputeCapability: "9.0", Driver: "580.65.06"},
}

func TestParseSMI(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []GPU
		wantErr string
	}{
		{name: "empty", out: "", want: nil},
		{name: "two H100", out: smiH100x2, want: smiH100x2GPUs},
		{name: "CRLF and blank lines", out: "\r\n" + strings.ReplaceAll(smiH100x2, "\n", "\r\n") + "\r\n", want: smiH100x2GPUs},
		{
			name: "consumer card",
			out:  "0, GPU-3f1e0c9a-2b4d-4a6e-8c0f-1e2d3c4b5a69, NVIDIA GeForce RTX 4090, 24564, 23938, 8.9, 550.54.14\n",
			want: []GPU{{Index: 0, UUID: "GPU-3f1e0c9a-2b4d-4a6e-8c0f-1e2d3c4b5a69", Name: "NVIDIA GeForce RTX 4090", MemoryMiB: 24564, FreeMemoryMiB: 23938, ComputeCapability: "8.9", Driver: "550.54.14"}},
		},
		{
			name: "compute capability 10.0",
			out:  "0, GPU-b200, NVIDIA B200, 183359, 182800, 10.0, 580.65.06\n",
			want: []GPU{{Index: 0, UUID: "GPU-b200", Name: "NVIDIA B200", MemoryMiB: 183359, FreeMemoryMiB: 182800, ComputeCapability: "10.0", Driver: "580.65.06"}},
		},
		{
			name: "comma in name",
			out:  "3, GPU-x, Some GPU, Rev B, 16384, 16000, 7.5, 535.183.01\n",
			want: []GPU{{Index: 3, UUID: "GPU-x", Name: "Some GPU, Rev B", MemoryMiB: 16384, FreeMemoryMiB: 16000, ComputeCapability: "7.5", Driver: "535.183.01"}},
		},
		{
			name: "free memory and cc not available",
			out:  "0, GPU-x, NVIDIA GH200 480GB, 97871, [N/A], [N/A], 580.65.06\n",
			want: []GPU{{Index: 0, UUID: "GPU-x", Name: "NVIDIA GH200 480GB", MemoryMiB: 97871, Driver: "580.65.06"}},
		},
		{name: "too few fields", out: "0, GPU-x, NVIDIA H100 80GB HBM3\n", wantErr: `line 1 "0, GPU-x, NVIDIA H100 80GB HBM3": got 3 fields, want 7`},
		{name: "bad second line", out: smiH100x2[:strings.Index(smiH100x2, "\n")+1] + "garbage\n", wantErr: "line 2"},
		{name: "index not a number", out: "first, GPU-x, NVIDIA H100, 81559, 81004, 9.0, 580.65.06\n", wantErr: `index "first": not a GPU index`},
		{name: "negative index", out: "-1, GPU-x, NVIDIA H100, 81559, 81004, 9.0, 580.65.06\n", wantErr: `index "-1"`},
		{name: "units left in", out: "0, GPU-x, NVIDIA H100, 81559 MiB, 81004 MiB, 9.0, 580.65.06\n", wantErr: `memory.total "81559 MiB": not a size in MiB`},
		{name: "total not available", out: "0, GPU-x, NVIDIA H100, [N/A], 81004, 9.0, 580.65.06\n", wantErr: `memory.total "[N/A]"`},
		{name: "zero total", out: "0, GPU-x, NVIDIA H100, 0, 0, 9.0, 580.65.06\n", wantErr: `memory.total "0"`},
		{name: "bad free", out: "0, GPU-x, NVIDIA H100, 81559, lots, 9.0, 580.65.06\n", wantErr: `memory.free "lots"`},
		{name: "bad cc", out: "0, GPU-x, NVIDIA H100, 81559, 81004, Hopper, 580.65.06\n", wantErr: `compute capability "Hopper"`},
		{name: "empty uuid", out: "0, , NVIDIA H100, 81559, 81004, 9.0, 580.65.06\n", wantErr: "empty uuid, name or driver_version"},
		{name: "error text as output", out: "No devices were found\n", wantErr: "got 1 fields, want 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSMI([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSMI error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSMI: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseSMI =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseCUDAVersion(t *testing.T) {
	tests := []struct {
		name   string
		banner string
		want   string
	}{
		{"CUDA 13", smiBanner, "13.0"},
		{"CUDA 12.4", "| NVIDIA-SMI 550.54.14    Driver Version: 550.54.14    CUDA Version: 12.4     |", "12.4"},
		{"bar right after", "CUDA Version: 12.8|", "12.8"},
		{"no version", "| NVIDIA-SMI 580.65.06    Driver Version: 580.65.06 |", ""},
		{"nothing after marker", "CUDA Version:", ""},
		{"not a version", "CUDA Version: N/A |", ""},
	}
	for _, tt := range tests {
		if got := parseCUDAVersion([]byte(tt.banner)); got != tt.want {
			t.Errorf("parseCUDAVersion(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestDetectSMI runs detectSMI against a fake nvidia-smi shell script.
func TestDetectSMI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake nvidia-smi is a shell script")
	}
	withCUDA := make([]GPU, len(smiH100x2GPUs))
	for i, g := range smiH100x2GPUs {
		g.CUDA = "13.0"
		withCUDA[i] = g
	}
	tests := []struct {
		name    string
		script  string // body of the fake nvidia-smi; "" means none on PATH
		timeout time.Duration
		want    []GPU
		wantErr string
	}{
		{name: "not installed", script: ""},
		{
			name:   "two GPUs",
			script: "if [ $# -eq 0 ]; then cat <<'X'\n" + smiBanner + "X\nelse cat <<'X'\n" + smiH100x2 + "X\nfi\n",
			want:   withCUDA,
		},
		{
			name:   "banner fails",
			script: "if [ $# -eq 0 ]; then exit 255; fi\ncat <<'X'\n" + smiH100x2 + "X\n",
			want:   smiH100x2GPUs,
		},
		{
			name:   "driver not loaded",
			script: "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\"\nexit 9\n",
		},
		{name: "no devices, exit 6", script: "echo 'No devices were found'\nexit 6\n"},
		{name: "no devices, exit 0", script: "echo 'No devices were found'\n"},
		{name: "library missing", script: "echo 'NVIDIA-SMI couldn'\"'\"'t find libnvidia-ml.so library in your system.'\nexit 12\n"},
		{name: "empty output", script: "exit 0\n"},
		{
			name:    "GPU fell off the bus",
			script:  "echo 'Unable to determine the device handle for GPU0000:17:00.0: Unknown Error' >&2\nexit 15\n",
			wantErr: "exit status 15: Unable to determine the device handle for GPU0000:17:00.0: Unknown Error",
		},
		{
			name:    "driver too old for compute_cap",
			script:  "echo 'Field \"compute_cap\" is not a valid field to query.'\nexit 2\n",
			wantErr: `exit status 2: Field "compute_cap" is not a valid field to query.`,
		},
		{name: "garbage", script: "echo garbage\n", wantErr: `nvidia-smi output line 1 "garbage"`},
		{name: "hangs", script: "exec sleep 30\n", timeout: 300 * time.Millisecond, wantErr: "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.script == "" {
				t.Setenv("PATH", dir)
			} else {
				path := filepath.Join(dir, "nvidia-smi")
				if err := os.WriteFile(path, []byte("#!/bin/sh\n"+tt.script), 0o755); err != nil {
					t.Fatalf("write fake nvidia-smi: %v", err)
				}
				t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			got, err := detectSMI(ctx)
			if elapsed := time.Since(start); elapsed > timeout+3*time.Second {
				t.Errorf("detectSMI took %v, want at most about %v", elapsed, timeout)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("detectSMI error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("detectSMI: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("detectSMI =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
