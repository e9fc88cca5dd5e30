package train

import "math"

// Tensor is a float32 array in a backend's memory (host or device). Its
// layout is the caller's business: the trainer keeps activations row-major
// with one example per row, and images as NHWC.
type Tensor interface {
	// Len is the number of float32 elements.
	Len() int
}

// Backend runs the numeric work of training. The trainer drives every
// backend through the same calls in the same order, so a CPU and a GPU run
// of one spec differ only by floating-point rounding.
//
// Calls are not safe for concurrent use. A backend may queue work
// asynchronously; Read waits for everything queued before it.
type Backend interface {
	// Name says which implementation this is ("cpu/openblas", "cuda/...").
	Name() string
	// New returns a zero-filled tensor of n elements.
	New(n int) Tensor
	// Write copies src into the first len(src) elements of dst.
	Write(dst Tensor, src []float32)
	// Read copies the first len(dst) elements of src into dst.
	Read(dst []float32, src Tensor)
	// Fill sets every element of t to v.
	Fill(t Tensor, v float32)
	// Gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices,
	// where op(A) is m×k, op(B) is k×n and C is m×n; op transposes when
	// the flag is set. With beta 0, C's old contents are ignored (NaN too).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a, b Tensor, beta float32, c Tensor)
	// Activate sets y = f(x) elementwise over the first n elements.
	Activate(f Activation, y, x Tensor, n int)
	// ActivateGrad sets dx = dy * f'(x), computed from the forward output
	// y = f(x), over the first n elements. dx may be dy.
	ActivateGrad(f Activation, dx, dy, y Tensor, n int)
	// Dropout sets mask[i] = keep(seed, i) / (1-rate) (0 when dropped) and
	// y = x * mask over the first n elements; keep is DropoutKeep.
	Dropout(y, mask, x Tensor, n int, rate float32, seed uint64)
	// Mul sets dst = a * b elementwise over the first n elements.
	Mul(dst, a, b Tensor, n int)
	// Im2col unfolds x (NHWC) into col, one row per output position
	// (n, oy, ox) and one column per (ky, kx, c), zero where the window
	// reaches into the padding.
	Im2col(col, x Tensor, g ConvGeom)
	// Col2im is Im2col's adjoint: dx[i] is the sum of every col entry that
	// Im2col would copy from x[i]. It overwrites dx.
	Col2im(dx, col Tensor, g ConvGeom)
	// MaxPool sets y (NHWC) to each window's maximum and arg to the index
	// in x of the first maximum, stored as int32 bits (see IndexBits).
	MaxPool(y, arg, x Tensor, g PoolGeom)
	// MaxPoolGrad sets dx[i] to the sum of dy over the windows whose arg
	// is i, and 0 elsewhere. It overwrites dx.
	MaxPoolGrad(dx, dy, arg Tensor, g PoolGeom)
	// SGD updates w in place with momentum and weight decay over n
	// elements: v = momentum*v + g + decay*w; w -= lr*v.
	SGD(w, g, v Tensor, n int, lr, momentum, decay float32)
	// Adam updates w in place over n elements (m, v: moment estimates;
	// step counts from 1):
	//   g' = g + decay*w; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'²
	//   w -= lr * (m/(1-b1^step)) / (sqrt(v/(1-b2^step)) + eps)
	Adam(w, g, m, v Tensor, n int, lr, beta1, beta2, eps, decay float32, step int)
	// Close frees the backend's memory; tensors are invalid afterwards.
	Close() error
}

// Activation names an elementwise function.
type Activation int

// Activations.
const (
	ReLU Activation = iota
	Sigmoid
	Tanh
)

// ConvGeom is the shape of a 2-D convolution over a batch of NHWC images
// with square kernels.
type ConvGeom struct {
	N, H, W, C     int // input batch, height, width, channels
	Kernel, Stride int
	Pad            int
	OutH, OutW     int
}

// ColRows is the number of rows of the unfolded input: one per output
// position of every image.
func (g ConvGeom) ColRows() int { return g.N * g.OutH * g.OutW }

// ColCols is the number of columns: one per kernel tap and channel.
func (g ConvGeom) ColCols() int { return g.Kernel * g.Kernel * g.C }

// PoolGeom is the shape of a max pooling over a batch of NHWC images.
type PoolGeom struct {
	N, H, W, C   int
	Size, Stride int
	OutH, OutW   int
}

// IndexBits stores an int32 index in a float32 slot by its bits, so that
// index tensors share the Tensor type without losing precision.
func IndexBits(i int32) float32 { return math.Float32frombits(uint32(i)) }

// BitsIndex reads an index stored by IndexBits.
func BitsIndex(f float32) int32 { return int32(math.Float32bits(f)) }

// DropoutKeep reports whether element i survives dropout at rate for the
// given seed. It is a counter-based hash (SplitMix64 of seed and index),
// so that every backend draws the same mask without sharing a generator.
func DropoutKeep(seed uint64, i uint32, rate float32) bool {
	z := seed + uint64(i)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	// 24 random bits as a float in [0, 1).
	u := float32(z>>40) * (1.0 / (1 << 24))
	return u >= rate
}

// AdamCorrections returns Adam's bias corrections 1-beta1^step and
// 1-beta2^step, computed once on the host so every backend uses the same
// values.
func AdamCorrections(beta1, beta2 float32, step int) (c1, c2 float32) {
	return float32(1 - math.Pow(float64(beta1), float64(step))), float32(1 - math.Pow(float64(beta2), float64(step)))
}
