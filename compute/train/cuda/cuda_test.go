//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/compute/train"
)

// The tests run every operation on the GPU and on train.NewCPU with the
// same inputs. The kernels repeat the CPU's float32 arithmetic, so all but
// GEMM (cuBLAS sums in another order) and sigmoid/tanh (own exp in double)
// must agree bit for bit.

func newBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// pair holds one tensor on each backend.
type pair struct {
	gpu, cpu train.Tensor
}

type env struct {
	t   *testing.T
	gpu *Backend
	cpu *train.CPU
	rng *rand.Rand
}

func newEnv(t *testing.T) *env {
	return &env{t: t, gpu: newBackend(t), cpu: train.NewCPU(), rng: rand.New(rand.NewPCG(1, 2))}
}

// tensor makes a pair holding data.
func (e *env) tensor(data []float32) pair {
	p := pair{gpu: e.gpu.New(len(data)), cpu: e.cpu.New(len(data))}
	e.gpu.Write(p.gpu, data)
	e.cpu.Write(p.cpu, data)
	return p
}

// random makes a pair of n normal values times scale.
func (e *env) random(n int, scale float32) pair {
	return e.tensor(e.randData(n, scale))
}

func (e *env) randData(n int, scale float32) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(e.rng.NormFloat64()) * scale
	}
	return d
}

// read returns both sides of p.
func (e *env) read(p pair) (gpu, cpu []float32) {
	gpu = make([]float32, p.gpu.Len())
	cpu = make([]float32, p.cpu.Len())
	e.gpu.Read(gpu, p.gpu)
	e.cpu.Read(cpu, p.cpu)
	if err := e.gpu.Err(); err != nil {
		e.t.Fatalf("gpu: %v", err)
	}
	return gpu, cpu
}

// same reports whether a and b have the same bits or are both NaN (whose
// payloads differ between the CPU and the GPU).
func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || math.IsNaN(float64(a)) && math.IsNaN(float64(b))
}

// exact fails unless both sides of p are the same.
func (e *env) exact(what string, p pair) {
	e.t.Helper()
	g, c := e.read(p)
	bad := 0
	for i := range c {
		if !same(g[i], c[i]) {
			if bad < 5 {
				e.t.Errorf("%s[%d]: gpu %v (%#08x), cpu %v (%#08x)", what, i, g[i], math.Float32bits(g[i]), c[i], math.Float32bits(c[i]))
			}
			bad++
		}
	}
	if bad > 0 {
		e.t.Errorf("%s: %d of %d elements differ", what, bad, len(c))
	}
}

// near fails unless |gpu-cpu| <= atol + rtol*|cpu| everywhere; it logs how
// many elements differ in their bits.
func (e *env) near(what string, p pair, atol, rtol float64) {
	e.t.Helper()
	g, c := e.read(p)
	bad, diff := 0, 0
	worst := 0.0
	for i := range c {
		if same(g[i], c[i]) {
			continue
		}
		diff++
		d := math.Abs(float64(g[i]) - float64(c[i]))
		worst = max(worst, d)
		if !(d <= atol+rtol*math.Abs(float64(c[i]))) {
			if bad < 5 {
				e.t.Errorf("%s[%d]: gpu %v, cpu %v", what, i, g[i], c[i])
			}
			bad++
		}
	}
	if bad > 0 {
		e.t.Errorf("%s: %d of %d elements out of tolerance", what, bad, len(c))
	}
	e.t.Logf("%s: %d of %d elements differ in bits, largest difference %.3g", what, diff, len(c), worst)
}

func TestInfo(t *testing.T) {
	b := newBackend(t)
	major, minor, err := b.ComputeCapability()
	if err != nil {
		t.Fatal(err)
	}
	free, total, err := b.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: compute capability %d.%d, %d of %d MiB free, driver CUDA %d",
		b.Name(), major, minor, free>>20, total>>20, DriverVersion())
	if total <= 0 || free > total {
		t.Errorf("memory: %d free of %d", free, total)
	}
}

func TestWriteReadFill(t *testing.T) {
	e := newEnv(t)
	z := e.gpu.New(1000)
	got := make([]float32, 1000)
	for i := range got {
		got[i] = 7
	}
	e.gpu.Read(got, z)
	for i, v := range got {
		if v != 0 {
			t.Fatalf("New: element %d is %v, want 0", i, v)
		}
	}
	e.exact("write", e.random(1001, 1))

	p := e.random(300, 1)
	e.gpu.Fill(p.gpu, -2.5)
	e.cpu.Fill(p.cpu, -2.5)
	e.exact("fill", p)

	// A short write and a short read touch only the first elements.
	e.gpu.Write(p.gpu, []float32{1, 2, 3})
	e.cpu.Write(p.cpu, []float32{1, 2, 3})
	e.exact("short write", p)
	head := make([]float32, 2)
	e.gpu.Read(head, p.gpu)
	if head[0] != 1 || head[1] != 2 {
		t.Errorf("short read: %v", head)
	}
	if err := e.gpu.Sync(); err != nil {
		t.Fatal(err)
	}
	if e.gpu.New(0).Len() != 0 {
		t.Errorf("New(0) has elements")
	}
}

func TestGemm(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		m, n, k        int
		transA, transB bool
		alpha, beta    float32
	}{
		{37, 53, 29, false, false, 1, 0},
		{37, 53, 29, true, false, 1.5, 0},
		{37, 53, 29, false, true, 1, 0.5},
		{37, 53, 29, true, true, -0.75, 1},
		{128, 10, 784, false, false, 1, 0},
		{784, 128, 100, true, false, 1, 0},
		{100, 784, 128, false, true, 1, 0},
		{1, 1, 1, false, false, 2, 0},
	} {
		name := fmt.Sprintf("%dx%dx%d_%t_%t_%g_%g", tc.m, tc.n, tc.k, tc.transA, tc.transB, tc.alpha, tc.beta)
		t.Run(name, func(t *testing.T) {
			e.t = t
			a, b := e.random(tc.m*tc.k, 1), e.random(tc.k*tc.n, 1)
			var c pair
			if tc.beta == 0 {
				// With beta 0, C's old contents are ignored, NaN too.
				nan := make([]float32, tc.m*tc.n)
				for i := range nan {
					nan[i] = float32(math.NaN())
				}
				c = e.tensor(nan)
			} else {
				c = e.random(tc.m*tc.n, 1)
			}
			e.gpu.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.gpu, b.gpu, tc.beta, c.gpu)
			e.cpu.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.cpu, b.cpu, tc.beta, c.cpu)
			// Sums of k products of unit normals: rounding grows like
			// sqrt(k) ulps of values about sqrt(k).
			e.near("gemm", c, 1e-5*float64(tc.k+1), 1e-5)
		})
	}
}

func TestActivate(t *testing.T) {
	e := newEnv(t)
	const n = 100003
	data := e.randData(n, 4)
	// Edge values: zeros, infinities, NaN, huge and tiny magnitudes.
	copy(data, []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-8, -1e-8, 20, -20, 50, -50, 100, -100, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())})
	for _, f := range []struct {
		name string
		act  train.Activation
	}{{"relu", train.ReLU}, {"sigmoid", train.Sigmoid}, {"tanh", train.Tanh}} {
		t.Run(f.name, func(t *testing.T) {
			e.t = t
			x := e.tensor(data)
			y := pair{gpu: e.gpu.New(n), cpu: e.cpu.New(n)}
			e.gpu.Activate(f.act, y.gpu, x.gpu, n)
			e.cpu.Activate(f.act, y.cpu, x.cpu, n)
			if f.act == train.ReLU {
				e.exact("y", y)
			} else {
				// Same double-precision formula, own exp: at most the last
				// bit may differ, and rarely.
				e.near("y", y, 1e-30, 1.2e-7)
			}
			// The gradient from the same y (the CPU's) must match exactly.
			yc := make([]float32, n)
			e.cpu.Read(yc, y.cpu)
			ys := e.tensor(yc)
			dy := e.random(n, 1)
			dx := pair{gpu: e.gpu.New(n), cpu: e.cpu.New(n)}
			e.gpu.ActivateGrad(f.act, dx.gpu, dy.gpu, ys.gpu, n)
			e.cpu.ActivateGrad(f.act, dx.cpu, dy.cpu, ys.cpu, n)
			e.exact("dx", dx)
			// In place: dx may be dy.
			e.gpu.ActivateGrad(f.act, dy.gpu, dy.gpu, ys.gpu, n)
			e.cpu.ActivateGrad(f.act, dy.cpu, dy.cpu, ys.cpu, n)
			e.exact("dx in place", dy)
		})
	}
}

func TestDropoutMul(t *testing.T) {
	e := newEnv(t)
	const n = 77777
	for _, rate := range []float32{0, 0.1, 0.5, 0.9} {
		x := e.random(n, 1)
		y := pair{gpu: e.gpu.New(n), cpu: e.cpu.New(n)}
		mask := pair{gpu: e.gpu.New(n), cpu: e.cpu.New(n)}
		seed := e.rng.Uint64()
		e.gpu.Dropout(y.gpu, mask.gpu, x.gpu, n, rate, seed)
		e.cpu.Dropout(y.cpu, mask.cpu, x.cpu, n, rate, seed)
		e.exact(fmt.Sprintf("dropout %g mask", rate), mask)
		e.exact(fmt.Sprintf("dropout %g y", rate), y)

		d := pair{gpu: e.gpu.New(n), cpu: e.cpu.New(n)}
		e.gpu.Mul(d.gpu, y.gpu, mask.gpu, n-5)
		e.cpu.Mul(d.cpu, y.cpu, mask.cpu, n-5)
		e.exact("mul", d)
	}
}

func TestIm2colCol2im(t *testing.T) {
	e := newEnv(t)
	for _, g := range []train.ConvGeom{
		{N: 2, H: 7, W: 6, C: 3, Kernel: 3, Stride: 2, Pad: 1, OutH: 4, OutW: 3},
		{N: 3, H: 8, W: 8, C: 5, Kernel: 3, Stride: 1, Pad: 1, OutH: 8, OutW: 8},
		{N: 1, H: 9, W: 9, C: 2, Kernel: 5, Stride: 1, Pad: 0, OutH: 5, OutW: 5},
		{N: 4, H: 28, W: 28, C: 1, Kernel: 5, Stride: 1, Pad: 2, OutH: 28, OutW: 28},
		{N: 2, H: 10, W: 10, C: 4, Kernel: 2, Stride: 3, Pad: 0, OutH: 3, OutW: 3},
	} {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			e.t = t
			x := e.random(g.N*g.H*g.W*g.C, 1)
			col := pair{gpu: e.gpu.New(g.ColRows() * g.ColCols()), cpu: e.cpu.New(g.ColRows() * g.ColCols())}
			e.gpu.Im2col(col.gpu, x.gpu, g)
			e.cpu.Im2col(col.cpu, x.cpu, g)
			e.exact("im2col", col)

			dcol := e.random(g.ColRows()*g.ColCols(), 1)
			dx := e.random(g.N*g.H*g.W*g.C, 1) // overwritten
			e.gpu.Col2im(dx.gpu, dcol.gpu, g)
			e.cpu.Col2im(dx.cpu, dcol.cpu, g)
			e.exact("col2im", dx)
		})
	}
}

func TestMaxPool(t *testing.T) {
	e := newEnv(t)
	for _, g := range []train.PoolGeom{
		{N: 2, H: 8, W: 8, C: 3, Size: 2, Stride: 2, OutH: 4, OutW: 4},
		{N: 2, H: 7, W: 5, C: 3, Size: 3, Stride: 2, OutH: 3, OutW: 2},
		{N: 2, H: 7, W: 5, C: 4, Size: 2, Stride: 2, OutH: 4, OutW: 3}, // windows past the edge
		{N: 1, H: 6, W: 6, C: 2, Size: 3, Stride: 1, OutH: 4, OutW: 4},
	} {
		t.Run(fmt.Sprintf("%+v", g), func(t *testing.T) {
			e.t = t
			// Few distinct values, so windows have ties: arg is the first.
			data := make([]float32, g.N*g.H*g.W*g.C)
			for i := range data {
				data[i] = float32(e.rng.IntN(4))
			}
			x := e.tensor(data)
			out := g.N * g.OutH * g.OutW * g.C
			y := pair{gpu: e.gpu.New(out), cpu: e.cpu.New(out)}
			arg := pair{gpu: e.gpu.New(out), cpu: e.cpu.New(out)}
			e.gpu.MaxPool(y.gpu, arg.gpu, x.gpu, g)
			e.cpu.MaxPool(y.cpu, arg.cpu, x.cpu, g)
			e.exact("y", y)
			e.exact("arg", arg)

			dy := e.random(out, 1)
			dx := e.random(len(data), 1) // overwritten
			e.gpu.MaxPoolGrad(dx.gpu, dy.gpu, arg.gpu, g)
			e.cpu.MaxPoolGrad(dx.cpu, dy.cpu, arg.cpu, g)
			e.exact("dx", dx)
		})
	}
}

func TestOptimizers(t *testing.T) {
	e := newEnv(t)
	const n = 50001
	w, v := e.random(n, 1), e.tensor(make([]float32, n))
	for range 5 {
		g := e.random(n, 0.1)
		e.gpu.SGD(w.gpu, g.gpu, v.gpu, n, 0.01, 0.9, 5e-4)
		e.cpu.SGD(w.cpu, g.cpu, v.cpu, n, 0.01, 0.9, 5e-4)
	}
	e.exact("sgd w", w)
	e.exact("sgd v", v)

	w, m, v := e.random(n, 1), e.tensor(make([]float32, n)), e.tensor(make([]float32, n))
	for step := 1; step <= 5; step++ {
		g := e.random(n, 0.1)
		e.gpu.Adam(w.gpu, g.gpu, m.gpu, v.gpu, n, 1e-3, 0.9, 0.999, 1e-8, 1e-4, step)
		e.cpu.Adam(w.cpu, g.cpu, m.cpu, v.cpu, n, 1e-3, 0.9, 0.999, 1e-8, 1e-4, step)
	}
	e.exact("adam w", w)
	e.exact("adam m", m)
	e.exact("adam v", v)
}

// TestClose checks that the backend reports calls after Close as errors.
func TestClose(t *testing.T) {
	b, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	x := b.New(10)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b.Fill(x, 1)
	if b.Err() == nil {
		t.Errorf("Fill after Close kept no error")
	}
}

// BenchmarkSgemm times square row-major GEMMs on cuBLAS (FP32, no TF32).
func BenchmarkSgemm(b *testing.B) {
	g := newBackend(b)
	for _, n := range []int{1024, 4096, 8192} {
		x, y, z := g.New(n*n), g.New(n*n), g.New(n*n)
		g.Fill(x, 0.5)
		g.Fill(y, 0.25)
		g.Gemm(false, false, n, n, n, 1, x, y, 0, z) // warm-up
		if err := g.Sync(); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			start := time.Now()
			for range b.N {
				g.Gemm(false, false, n, n, n, 1, x, y, 0, z)
			}
			if err := g.Sync(); err != nil {
				b.Fatal(err)
			}
			secs := time.Since(start).Seconds()
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/secs/1e9, "GFLOPS")
		})
	}
}
