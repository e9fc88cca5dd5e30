package train

import (
	"math"
)

// sgemmFunc is a row-major single-precision GEMM with explicit leading
// dimensions, as CBLAS defines it.
type sgemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// CPU is the host backend. Its GEMM is OpenBLAS where the binary was built
// with it (the openblas build tag, set by make when the library is
// present), else gonum's pure-Go kernel; everything else is plain Go,
// single-threaded and deterministic.
type CPU struct {
	name  string
	sgemm sgemmFunc
}

type cpuTensor []float32

func (t cpuTensor) Len() int { return len(t) }

// NewCPU returns the fastest CPU backend this binary has.
func NewCPU() *CPU {
	if fastSgemm != nil {
		return &CPU{name: "cpu/" + fastSgemmName, sgemm: fastSgemm}
	}
	return NewPureGo()
}

// NewPureGo returns the CPU backend with gonum's pure-Go GEMM, whatever
// the build: the baseline the benchmarks compare against.
func NewPureGo() *CPU { return &CPU{name: "cpu/gonum", sgemm: gonumSgemm} }

// Name implements Backend.
func (c *CPU) Name() string { return c.name }

// New implements Backend.
func (c *CPU) New(n int) Tensor { return make(cpuTensor, n) }

func host(t Tensor) []float32 { return t.(cpuTensor) }

// Write implements Backend.
func (c *CPU) Write(dst Tensor, src []float32) { copy(host(dst), src) }

// Read implements Backend.
func (c *CPU) Read(dst []float32, src Tensor) { copy(dst, host(src)) }

// Fill implements Backend.
func (c *CPU) Fill(t Tensor, v float32) {
	x := host(t)
	for i := range x {
		x[i] = v
	}
}

// Gemm implements Backend.
func (c *CPU) Gemm(transA, transB bool, m, n, k int, alpha float32, a, b Tensor, beta float32, cc Tensor) {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	c.sgemm(transA, transB, m, n, k, alpha, host(a), lda, host(b), ldb, beta, host(cc), n)
}

// Activate implements Backend.
func (c *CPU) Activate(f Activation, y, x Tensor, n int) {
	ys, xs := host(y)[:n], host(x)[:n]
	switch f {
	case ReLU:
		for i, v := range xs {
			if v > 0 {
				ys[i] = v
			} else {
				ys[i] = 0
			}
		}
	case Sigmoid:
		for i, v := range xs {
			ys[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	case Tanh:
		for i, v := range xs {
			ys[i] = float32(math.Tanh(float64(v)))
		}
	}
}

// ActivateGrad implements Backend.
func (c *CPU) ActivateGrad(f Activation, dx, dy, y Tensor, n int) {
	dxs, dys, ys := host(dx)[:n], host(dy)[:n], host(y)[:n]
	switch f {
	case ReLU:
		for i, v := range ys {
			if v > 0 {
				dxs[i] = dys[i]
			} else {
				dxs[i] = 0
			}
		}
	case Sigmoid:
		for i, v := range ys {
			dxs[i] = dys[i] * (v * (1 - v))
		}
	case Tanh:
		for i, v := range ys {
			dxs[i] = dys[i] * (1 - v*v)
		}
	}
}

// Dropout implements Backend.
func (c *CPU) Dropout(y, mask, x Tensor, n int, rate float32, seed uint64) {
	ys, ms, xs := host(y)[:n], host(mask)[:n], host(x)[:n]
	scale := 1 / (1 - rate)
	for i := range xs {
		if DropoutKeep(seed, uint32(i), rate) {
			ms[i] = scale
		} else {
			ms[i] = 0
		}
		ys[i] = xs[i] * ms[i]
	}
}

// Mul implements Backend.
func (c *CPU) Mul(dst, a, b Tensor, n int) {
	d, as, bs := host(dst)[:n], host(a)[:n], host(b)[:n]
	for i := range d {
		d[i] = as[i] * bs[i]
	}
}

// Im2col implements Backend.
func (c *CPU) Im2col(col, x Tensor, g ConvGeom) {
	cs, xs := host(col), host(x)
	row := 0
	for n := 0; n < g.N; n++ {
		for oy := 0; oy < g.OutH; oy++ {
			for ox := 0; ox < g.OutW; ox++ {
				out := cs[row*g.ColCols() : (row+1)*g.ColCols()]
				row++
				j := 0
				for ky := 0; ky < g.Kernel; ky++ {
					iy := oy*g.Stride - g.Pad + ky
					for kx := 0; kx < g.Kernel; kx++ {
						ix := ox*g.Stride - g.Pad + kx
						if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
							clear(out[j : j+g.C])
						} else {
							base := ((n*g.H+iy)*g.W + ix) * g.C
							copy(out[j:j+g.C], xs[base:base+g.C])
						}
						j += g.C
					}
				}
			}
		}
	}
}

// Col2im implements Backend.
func (c *CPU) Col2im(dx, col Tensor, g ConvGeom) {
	ds, cs := host(dx), host(col)
	cols := g.ColCols()
	for n := 0; n < g.N; n++ {
		for iy := 0; iy < g.H; iy++ {
			for ix := 0; ix < g.W; ix++ {
				base := ((n*g.H+iy)*g.W + ix) * g.C
				for ch := 0; ch < g.C; ch++ {
					var sum float32
					for ky := 0; ky < g.Kernel; ky++ {
						ty := iy + g.Pad - ky
						if ty < 0 || ty%g.Stride != 0 || ty/g.Stride >= g.OutH {
							continue
						}
						oy := ty / g.Stride
						for kx := 0; kx < g.Kernel; kx++ {
							tx := ix + g.Pad - kx
							if tx < 0 || tx%g.Stride != 0 || tx/g.Stride >= g.OutW {
								continue
							}
							ox := tx / g.Stride
							row := (n*g.OutH+oy)*g.OutW + ox
							sum += cs[row*cols+(ky*g.Kernel+kx)*g.C+ch]
						}
					}
					ds[base+ch] = sum
				}
			}
		}
	}
}

// MaxPool implements Backend.
func (c *CPU) MaxPool(y, arg, x Tensor, g PoolGeom) {
	ys, as, xs := host(y), host(arg), host(x)
	for n := 0; n < g.N; n++ {
		for oy := 0; oy < g.OutH; oy++ {
			for ox := 0; ox < g.OutW; ox++ {
				for ch := 0; ch < g.C; ch++ {
					best, bestAt := float32(math.Inf(-1)), int32(-1)
					for ky := 0; ky < g.Size; ky++ {
						iy := oy*g.Stride + ky
						if iy >= g.H {
							break
						}
						for kx := 0; kx < g.Size; kx++ {
							ix := ox*g.Stride + kx
							if ix >= g.W {
								break
							}
							at := int32(((n*g.H+iy)*g.W+ix)*g.C + ch)
							if v := xs[at]; v > best || bestAt < 0 {
								best, bestAt = v, at
							}
						}
					}
					o := ((n*g.OutH+oy)*g.OutW+ox)*g.C + ch
					ys[o], as[o] = best, IndexBits(bestAt)
				}
			}
		}
	}
}

// MaxPoolGrad implements Backend.
func (c *CPU) MaxPoolGrad(dx, dy, arg Tensor, g PoolGeom) {
	ds, dys, as := host(dx), host(dy), host(arg)
	for n := 0; n < g.N; n++ {
		for iy := 0; iy < g.H; iy++ {
			oy0, oy1 := poolWindows(iy, g.Size, g.Stride, g.OutH)
			for ix := 0; ix < g.W; ix++ {
				ox0, ox1 := poolWindows(ix, g.Size, g.Stride, g.OutW)
				for ch := 0; ch < g.C; ch++ {
					at := int32(((n*g.H+iy)*g.W+ix)*g.C + ch)
					var sum float32
					for oy := oy0; oy <= oy1; oy++ {
						for ox := ox0; ox <= ox1; ox++ {
							o := ((n*g.OutH+oy)*g.OutW+ox)*g.C + ch
							if BitsIndex(as[o]) == at {
								sum += dys[o]
							}
						}
					}
					ds[at] = sum
				}
			}
		}
	}
}

// poolWindows returns the first and last output positions whose window of
// size and stride covers input position i (first > last when none does).
func poolWindows(i, size, stride, out int) (first, last int) {
	first = 0
	if i-size+1 > 0 {
		first = (i - size + stride) / stride
	}
	last = i / stride
	if last > out-1 {
		last = out - 1
	}
	return first, last
}

// SGD implements Backend.
func (c *CPU) SGD(w, g, v Tensor, n int, lr, momentum, decay float32) {
	ws, gs, vs := host(w)[:n], host(g)[:n], host(v)[:n]
	for i := range ws {
		vs[i] = momentum*vs[i] + gs[i] + decay*ws[i]
		ws[i] -= lr * vs[i]
	}
}

// Adam implements Backend.
func (c *CPU) Adam(w, g, m, v Tensor, n int, lr, beta1, beta2, eps, decay float32, step int) {
	ws, gs, ms, vs := host(w)[:n], host(g)[:n], host(m)[:n], host(v)[:n]
	c1, c2 := AdamCorrections(beta1, beta2, step)
	for i := range ws {
		gi := gs[i] + decay*ws[i]
		ms[i] = beta1*ms[i] + (1-beta1)*gi
		vs[i] = beta2*vs[i] + (1-beta2)*gi*gi
		ws[i] -= lr * (ms[i] / c1) / (float32(math.Sqrt(float64(vs[i]/c2))) + eps)
	}
}

// Close implements Backend.
func (c *CPU) Close() error { return nil }
