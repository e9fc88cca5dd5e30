package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSgemm measures square GEMMs on the CPU backends, in GFLOPS.
func BenchmarkSgemm(b *testing.B) {
	for _, be := range []*CPU{NewCPU(), NewPureGo()} {
		for _, n := range []int{256, 1024} {
			b.Run(fmt.Sprintf("%s/n=%d", be.Name(), n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				x, y, z := be.New(n*n), be.New(n*n), be.New(n*n)
				buf := make([]float32, n*n)
				for i := range buf {
					buf[i] = rng.Float32()
				}
				be.Write(x, buf)
				be.Write(y, buf)
				for b.Loop() {
					be.Gemm(false, false, n, n, n, 1, x, y, 0, z)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}
