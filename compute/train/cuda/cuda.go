//go:build cuda

// Package cuda is the training runtime's GPU backend: train.Backend on one
// NVIDIA GPU through the CUDA driver API (gorgonia.org/cu), with GEMM on
// cuBLAS and every other operation in the PTX kernels of package kernels,
// which reproduce the CPU backend's arithmetic step for step.
//
// The package builds only with the cuda build tag, because a binary that
// links gorgonia.org/cu exits at start on a machine without the CUDA
// driver: only the GPU worker binary imports it. It compiles against the
// CUDA headers and links against the stub libraries that
// scripts/cuda-sdk.sh prepares (CGO_CFLAGS, CGO_LDFLAGS); at run time the
// binary loads the real libcuda.so.1 and libcublas.
//
// All work goes to the device's legacy default stream, in call order;
// kernels and GEMMs run asynchronously and Read waits for them. The Backend
// interface has no error returns, so the first CUDA error is kept: Err and
// Close report it, and every call after it does nothing.
package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/cu"
	cublas "gorgonia.org/cu/blas"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/compute/train/kernels"
)

// Launch shape: threads per block, and the most blocks of a launch (the
// kernels loop over the rest with a grid stride).
const (
	blockSize = 256
	maxBlocks = 1 << 16
)

// Backend is train.Backend on one CUDA device. Like every backend it is
// not safe for concurrent use.
type Backend struct {
	device  cu.Device
	devName string
	ctx     cu.CUContext
	hasCtx  bool
	mod     cu.Module
	hasMod  bool
	fn      map[string]cu.Function
	blas    *cublas.Standard
	allocs  []cu.DevicePtr
	err     error
	closed  bool
}

var _ train.Backend = (*Backend)(nil)

// tensor is a float32 array in device memory.
type tensor struct {
	ptr   cu.DevicePtr
	n     int
	owner *Backend
}

// Len implements train.Tensor.
func (t *tensor) Len() int { return t.n }

// NumDevices returns the number of CUDA devices the driver sees.
func NumDevices() (int, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return 0, fmt.Errorf("cuda: count devices: %w", err)
	}
	return n, nil
}

// New opens the device with the given ordinal: it retains the device's
// primary context, loads the kernels (the driver compiles their PTX for the
// device) and creates a cuBLAS handle.
func New(device int) (*Backend, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	b := &Backend{fn: make(map[string]cu.Function)}
	dev, err := cu.GetDevice(device)
	if err != nil {
		return nil, fmt.Errorf("cuda: get device %d: %w", device, err)
	}
	b.device = dev
	if b.devName, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("cuda: name of device %d: %w", device, err)
	}
	if b.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: retain the primary context of device %d: %w", device, err)
	}
	b.hasCtx = true
	if err := b.setup(); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// setup loads the kernels and creates the cuBLAS handle; the caller has
// locked its OS thread.
func (b *Backend) setup() error {
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: make the context current: %w", err)
	}
	mod, err := cu.LoadData(kernels.PTX)
	if err != nil {
		return fmt.Errorf("cuda: load the kernels' PTX: %w", err)
	}
	b.mod, b.hasMod = mod, true
	for _, name := range kernels.Names {
		f, err := mod.Function(name)
		if err != nil {
			return fmt.Errorf("cuda: find kernel %s: %w", name, err)
		}
		b.fn[name] = f
	}
	h := &cublas.Standard{}
	if err := h.Init(); err != nil {
		return fmt.Errorf("cuda: create the cuBLAS handle: %w", err)
	}
	b.blas = h
	return nil
}

// Name implements train.Backend: "cuda/" and the device's name.
func (b *Backend) Name() string { return "cuda/" + b.devName }

// DeviceName returns the device's name, such as "NVIDIA H100 80GB HBM3".
func (b *Backend) DeviceName() string { return b.devName }

// ComputeCapability returns the device's compute capability (9.0 for
// Hopper).
func (b *Backend) ComputeCapability() (major, minor int, err error) {
	major, minor, err = b.device.ComputeCapability()
	if err != nil {
		return 0, 0, fmt.Errorf("cuda: compute capability: %w", err)
	}
	return major, minor, nil
}

// MemInfo returns the device's free and total memory in bytes.
func (b *Backend) MemInfo() (free, total int64, err error) {
	if b.err != nil {
		return 0, 0, b.err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return 0, 0, fmt.Errorf("cuda: memory info: make the context current: %w", err)
	}
	if free, total, err = cu.MemInfo(); err != nil {
		return 0, 0, fmt.Errorf("cuda: memory info: %w", err)
	}
	return free, total, nil
}

// DriverVersion returns the CUDA version the driver supports, such as
// 13000 for 13.0.
func DriverVersion() int { return cu.Version() }

// Err returns the first error a CUDA call returned, if any.
func (b *Backend) Err() error { return b.err }

// Sync waits for all queued work and returns Err.
func (b *Backend) Sync() error {
	b.do("synchronize", cu.Synchronize)
	return b.err
}

// do runs f with the backend's context current on a locked OS thread, and
// keeps its error. It runs nothing once an error is kept or after Close.
func (b *Backend) do(what string, f func() error) {
	if b.err != nil {
		return
	}
	if b.closed {
		b.err = fmt.Errorf("cuda: %s: backend is closed", what)
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		b.err = fmt.Errorf("cuda: %s: make the context current: %w", what, err)
		return
	}
	if err := f(); err != nil {
		b.err = fmt.Errorf("cuda: %s: %w", what, err)
	}
}

// dev returns t as this backend's tensor with at least n elements; it
// panics otherwise, as the CPU backend does on short slices.
func (b *Backend) dev(t train.Tensor, n int) *tensor {
	d, ok := t.(*tensor)
	if !ok || d.owner != b {
		panic(fmt.Sprintf("cuda: tensor %T is not from this backend", t))
	}
	if n > d.n {
		panic(fmt.Sprintf("cuda: %d elements of a tensor of %d", n, d.n))
	}
	return d
}

// New implements train.Backend.
func (b *Backend) New(n int) train.Tensor {
	t := &tensor{n: n, owner: b}
	if n <= 0 {
		t.n = 0
		return t
	}
	b.do("allocate", func() error {
		p, err := cu.MemAlloc(int64(n) * 4)
		if err != nil {
			return fmt.Errorf("%d bytes: %w", int64(n)*4, err)
		}
		b.allocs = append(b.allocs, p)
		t.ptr = p
		return cu.MemsetD32(p, 0, int64(n))
	})
	return t
}

// Write implements train.Backend. Like copy, it copies
// min(len(src), dst.Len()) elements.
func (b *Backend) Write(dst train.Tensor, src []float32) {
	d := b.dev(dst, 0)
	n := min(len(src), d.n)
	if n == 0 {
		return
	}
	b.do("write", func() error {
		return cu.MemcpyHtoD(d.ptr, unsafe.Pointer(&src[0]), int64(n)*4)
	})
}

// Read implements train.Backend: it waits for the work queued before it.
// Like copy, it copies min(len(dst), src.Len()) elements; it copies
// nothing once an error is kept.
func (b *Backend) Read(dst []float32, src train.Tensor) {
	s := b.dev(src, 0)
	n := min(len(dst), s.n)
	if n == 0 {
		return
	}
	b.do("read", func() error {
		return cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), s.ptr, int64(n)*4)
	})
}

// Fill implements train.Backend.
func (b *Backend) Fill(t train.Tensor, v float32) {
	d := b.dev(t, 0)
	b.launch("fill", d.n, ptr(d), i32(d.n), f32(v))
}

// Gemm implements train.Backend with cuBLAS. cuBLAS is column-major, and a
// row-major matrix is its transpose in column-major order, so C = op(A)op(B)
// is computed as Cᵀ = op(B)ᵀop(A)ᵀ: the operands swap, and m with n.
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, a, bt train.Tensor, beta float32, c train.Tensor) {
	da, db, dc := b.dev(a, m*k), b.dev(bt, k*n), b.dev(c, m*n)
	if m == 0 || n == 0 {
		return
	}
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	// With k = 0 cuBLAS only scales C and reads neither operand, which may
	// then have no memory: hand it C's.
	pa, pb := da.ptr, db.ptr
	if k == 0 {
		pa, pb = dc.ptr, dc.ptr
	}
	b.do("gemm", func() error {
		b.blas.Sgemm(transpose(transB), transpose(transA), n, m, k, alpha,
			devSlice(pb, n*k), max(ldb, 1), devSlice(pa, m*k), max(lda, 1),
			beta, devSlice(dc.ptr, m*n), n)
		return b.blas.Err()
	})
}

func transpose(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// devSlice presents device memory as a []float32 for gorgonia.org/cu/blas,
// which takes slices and passes their first element's address to cuBLAS.
// The slice must never be read or written from Go.
func devSlice(p cu.DevicePtr, n int) []float32 {
	return unsafe.Slice(*(**float32)(unsafe.Pointer(&p)), max(n, 1))
}

// Activate implements train.Backend.
func (b *Backend) Activate(f train.Activation, y, x train.Tensor, n int) {
	dy, dx := b.dev(y, n), b.dev(x, n)
	b.launch("activate", n, i32(int(f)), ptr(dy), ptr(dx), i32(n))
}

// ActivateGrad implements train.Backend.
func (b *Backend) ActivateGrad(f train.Activation, dx, dy, y train.Tensor, n int) {
	ddx, ddy, d := b.dev(dx, n), b.dev(dy, n), b.dev(y, n)
	b.launch("activate_grad", n, i32(int(f)), ptr(ddx), ptr(ddy), ptr(d), i32(n))
}

// Dropout implements train.Backend.
func (b *Backend) Dropout(y, mask, x train.Tensor, n int, rate float32, seed uint64) {
	dy, dm, dx := b.dev(y, n), b.dev(mask, n), b.dev(x, n)
	scale := 1 / (1 - rate)
	b.launch("dropout", n, ptr(dy), ptr(dm), ptr(dx), i32(n), f32(rate), f32(scale), seed)
}

// Mul implements train.Backend.
func (b *Backend) Mul(dst, a, bt train.Tensor, n int) {
	dd, da, db := b.dev(dst, n), b.dev(a, n), b.dev(bt, n)
	b.launch("mul", n, ptr(dd), ptr(da), ptr(db), i32(n))
}

// convArgs are a ConvGeom's fields in the kernels' order.
func convArgs(g train.ConvGeom) []uint64 {
	return []uint64{i32(g.N), i32(g.H), i32(g.W), i32(g.C), i32(g.Kernel), i32(g.Stride), i32(g.Pad), i32(g.OutH), i32(g.OutW)}
}

// Im2col implements train.Backend.
func (b *Backend) Im2col(col, x train.Tensor, g train.ConvGeom) {
	total := g.ColRows() * g.ColCols()
	dc, dx := b.dev(col, total), b.dev(x, g.N*g.H*g.W*g.C)
	b.checkSize("im2col", g.N*g.H*g.W*g.C)
	b.launch("im2col", total, append([]uint64{ptr(dc), ptr(dx)}, convArgs(g)...)...)
}

// Col2im implements train.Backend.
func (b *Backend) Col2im(dx, col train.Tensor, g train.ConvGeom) {
	total := g.N * g.H * g.W * g.C
	dd, dc := b.dev(dx, total), b.dev(col, g.ColRows()*g.ColCols())
	b.checkSize("col2im", g.ColRows()*g.ColCols())
	b.launch("col2im", total, append([]uint64{ptr(dd), ptr(dc)}, convArgs(g)...)...)
}

// poolArgs are a PoolGeom's fields in the kernels' order.
func poolArgs(g train.PoolGeom) []uint64 {
	return []uint64{i32(g.N), i32(g.H), i32(g.W), i32(g.C), i32(g.Size), i32(g.Stride), i32(g.OutH), i32(g.OutW)}
}

// MaxPool implements train.Backend.
func (b *Backend) MaxPool(y, arg, x train.Tensor, g train.PoolGeom) {
	out := g.N * g.OutH * g.OutW * g.C
	dy, da, dx := b.dev(y, out), b.dev(arg, out), b.dev(x, g.N*g.H*g.W*g.C)
	b.checkSize("maxpool", g.N*g.H*g.W*g.C)
	b.launch("maxpool", out, append([]uint64{ptr(dy), ptr(da), ptr(dx)}, poolArgs(g)...)...)
}

// MaxPoolGrad implements train.Backend.
func (b *Backend) MaxPoolGrad(dx, dy, arg train.Tensor, g train.PoolGeom) {
	total := g.N * g.H * g.W * g.C
	out := g.N * g.OutH * g.OutW * g.C
	dd, ddy, da := b.dev(dx, total), b.dev(dy, out), b.dev(arg, out)
	b.checkSize("maxpool grad", out)
	b.launch("maxpool_grad", total, append([]uint64{ptr(dd), ptr(ddy), ptr(da)}, poolArgs(g)...)...)
}

// SGD implements train.Backend.
func (b *Backend) SGD(w, g, v train.Tensor, n int, lr, momentum, decay float32) {
	dw, dg, dv := b.dev(w, n), b.dev(g, n), b.dev(v, n)
	b.launch("sgd", n, ptr(dw), ptr(dg), ptr(dv), i32(n), f32(lr), f32(momentum), f32(decay))
}

// Adam implements train.Backend; the bias corrections come from
// train.AdamCorrections, as on the CPU.
func (b *Backend) Adam(w, g, m, v train.Tensor, n int, lr, beta1, beta2, eps, decay float32, step int) {
	dw, dg, dm, dv := b.dev(w, n), b.dev(g, n), b.dev(m, n), b.dev(v, n)
	c1, c2 := train.AdamCorrections(beta1, beta2, step)
	b.launch("adam", n, ptr(dw), ptr(dg), ptr(dm), ptr(dv), i32(n),
		f32(lr), f32(beta1), f32(beta2), f32(eps), f32(decay), f32(c1), f32(c2))
}

// Close implements train.Backend: it frees every tensor, the kernels and
// the cuBLAS handle, and releases the device's primary context. It returns
// the first error the backend kept, else the first error of freeing.
func (b *Backend) Close() error {
	if b.closed {
		return b.err
	}
	b.closed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var errs []error
	if b.hasCtx {
		if err := cu.SetCurrentContext(b.ctx); err != nil {
			errs = append(errs, fmt.Errorf("cuda: close: make the context current: %w", err))
		}
	}
	for _, p := range b.allocs {
		if err := cu.MemFree(p); err != nil {
			errs = append(errs, fmt.Errorf("cuda: close: free device memory: %w", err))
			break
		}
	}
	b.allocs = nil
	if b.blas != nil {
		if err := b.blas.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: close: destroy the cuBLAS handle: %w", err))
		}
		b.blas = nil
	}
	if b.hasMod {
		if err := b.mod.Unload(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: close: unload the kernels: %w", err))
		}
		b.hasMod = false
	}
	if b.hasCtx {
		if err := b.device.ReleasePrimaryCtx(); err != nil {
			errs = append(errs, fmt.Errorf("cuda: close: release the primary context: %w", err))
		}
		b.hasCtx = false
	}
	if b.err == nil {
		b.err = errors.Join(errs...)
	}
	return b.err
}

// checkSize keeps an error when n does not fit the kernels' 32-bit
// indices.
func (b *Backend) checkSize(what string, n int) {
	if n > math.MaxInt32 && b.err == nil {
		b.err = fmt.Errorf("cuda: %s: %d elements exceed the kernels' 32-bit indexing", what, n)
	}
}

// launch runs kernel name over n elements on the default stream without
// waiting for it. Each argument takes an 8-byte slot, as
// gorgonia.org/cu's Launch copies them; the kernel reads the low bytes of
// the 4-byte ones (little-endian).
func (b *Backend) launch(name string, n int, args ...uint64) {
	b.checkSize(name, n)
	if n <= 0 || b.err != nil {
		return
	}
	blocks := min((n+blockSize-1)/blockSize, maxBlocks)
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	b.do(name, func() error {
		return b.fn[name].Launch(blocks, 1, 1, blockSize, 1, 1, 0, cu.NoStream, params)
	})
}

// ptr, i32 and f32 encode kernel arguments.
func ptr(t *tensor) uint64 { return uint64(t.ptr) }
func i32(v int) uint64     { return uint64(uint32(int32(v))) }
func f32(v float32) uint64 { return uint64(math.Float32bits(v)) }
