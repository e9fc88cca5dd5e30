package gpu

import (
	"encoding/json"
	"testing"
)

var (
	h100 = GPU{Index: 0, UUID: "GPU-a", Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, FreeMemoryMiB: 81000, ComputeCapability: "9.0", Driver: "580.65.06", CUDA: "13.0"}
	b200 = GPU{Index: 1, UUID: "GPU-b", Name: "NVIDIA B200", MemoryMiB: 183359, FreeMemoryMiB: 180000, ComputeCapability: "10.0", Driver: "580.65.06", CUDA: "13.0"}
	a10  = GPU{Index: 2, UUID: "GPU-c", Name: "NVIDIA A10", MemoryMiB: 23028, FreeMemoryMiB: 22000, ComputeCapability: "8.6", Driver: "580.65.06", CUDA: "13.0"}
)

func TestMatches(t *testing.T) {
	tests := []struct {
		name      string
		gpus      []GPU
		count     int
		minMemMiB int
		minCC     string
		want      bool
	}{
		{"no GPUs, none wanted", nil, 0, 0, "", true},
		{"no GPUs, one wanted", nil, 1, 0, "", false},
		{"any one GPU", []GPU{a10}, 1, 0, "", true},
		{"memory just enough", []GPU{h100}, 1, 81559, "", true},
		{"memory one short", []GPU{h100}, 1, 81560, "", false},
		{"cc equal", []GPU{h100}, 1, 0, "9.0", true},
		{"cc lone major", []GPU{h100}, 1, 0, "9", true},
		{"cc below", []GPU{a10}, 1, 0, "8.9", false},
		{"cc 10.0 above 9.0", []GPU{b200}, 1, 0, "9.0", true},
		{"cc 9.0 below 10.0", []GPU{h100}, 1, 0, "10.0", false},
		{"two of three qualify", []GPU{h100, b200, a10}, 2, 80000, "9.0", true},
		{"three wanted, two qualify", []GPU{h100, b200, a10}, 3, 80000, "9.0", false},
		{"count above GPUs", []GPU{h100, h100}, 4, 0, "", false},
		{"bad minCC matches nothing", []GPU{h100}, 1, 0, "nine", false},
		{"bad minCC, none wanted", []GPU{h100}, 0, 0, "nine", true},
		{"GPU without cc fails a cc need", []GPU{{MemoryMiB: 1000}}, 1, 0, "7.0", false},
		{"GPU without cc, no cc need", []GPU{{MemoryMiB: 1000}}, 1, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Matches(tt.gpus, tt.count, tt.minMemMiB, tt.minCC)
			if got != tt.want {
				t.Errorf("Matches(count=%d, minMemMiB=%d, minCC=%q) = %v, want %v", tt.count, tt.minMemMiB, tt.minCC, got, tt.want)
			}
		})
	}
}

func TestCompareCC(t *testing.T) {
	tests := []struct {
		a, b    string
		want    int
		wantErr bool
	}{
		{"9.0", "9.0", 0, false},
		{"9.0", "10.0", -1, false},
		{"10.0", "9.0", 1, false},
		{"8.6", "8.9", -1, false},
		{"12.1", "12.0", 1, false},
		{"9", "9.0", 0, false},
		{" 9.0 ", "9.0", 0, false},
		{"", "9.0", 0, true},
		{"9.x", "9.0", 0, true},
		{"9.0", "-1.0", 0, true},
	}
	for _, tt := range tests {
		got, err := compareCC(tt.a, tt.b)
		if (err != nil) != tt.wantErr {
			t.Errorf("compareCC(%q, %q) error = %v, want error %v", tt.a, tt.b, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("compareCC(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		gpus []GPU
		want string
	}{
		{"none", nil, "no GPUs"},
		{"one", []GPU{h100}, "1 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0); driver 580.65.06, CUDA 13.0"},
		{"identical counted", []GPU{h100, h100}, "2 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0); driver 580.65.06, CUDA 13.0"},
		{"mixed in order", []GPU{b200, h100, b200}, "2 x NVIDIA B200 (183359 MiB, compute 10.0), 1 x NVIDIA H100 80GB HBM3 (81559 MiB, compute 9.0); driver 580.65.06, CUDA 13.0"},
		{"no versions", []GPU{{Name: "X", MemoryMiB: 1, ComputeCapability: "7.5"}}, "1 x X (1 MiB, compute 7.5)"},
		{"driver only", []GPU{{Name: "X", MemoryMiB: 1, ComputeCapability: "7.5", Driver: "535.1"}}, "1 x X (1 MiB, compute 7.5); driver 535.1"},
	}
	for _, tt := range tests {
		if got := Summary(tt.gpus); got != tt.want {
			t.Errorf("Summary(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestFormatCUDAVersion(t *testing.T) {
	tests := []struct {
		v    int
		want string
	}{
		{13000, "13.0"},
		{12040, "12.4"},
		{12080, "12.8"},
		{11080, "11.8"},
		{0, ""},
		{-1, ""},
	}
	for _, tt := range tests {
		if got := formatCUDAVersion(tt.v); got != tt.want {
			t.Errorf("formatCUDAVersion(%d) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestGPUJSON(t *testing.T) {
	got, err := json.Marshal(h100)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	want := `{"index":0,"uuid":"GPU-a","name":"NVIDIA H100 80GB HBM3","memory_mib":81559,"free_memory_mib":81000,"compute_capability":"9.0","driver":"580.65.06","cuda":"13.0"}`
	if string(got) != want {
		t.Errorf("json.Marshal(GPU) = %s, want %s", got, want)
	}
}
