// Elementwise and layout kernels of the CUDA training backend.
//
// Compiled to PTX by scripts/build-ptx.sh with clang alone: no CUDA headers,
// no libdevice. Every kernel is extern "C" (its PTX name is its C name),
// walks its elements with a grid-stride loop, and reproduces the CPU
// backend (compute/train/cpu.go) operation for operation: the PTX is built
// with -ffp-contract=off, so no multiply-add is fused, and float division and
// square root round correctly, as Go's do. Sigmoid and tanh are computed in
// double precision and rounded to float, as the CPU backend does; their
// exp and expm1 are our own (error about 1 ulp of a double), so a result can
// differ from Go's in the last float bit only in the rarest cases.
//
// Every kernel argument is a pointer, an int, a float or an unsigned long
// long; the Go side passes each in its own 8-byte slot.

#ifndef __global__
#define __global__ __attribute__((global))
#endif
#ifndef __device__
#define __device__ __attribute__((device))
#endif
#define DEV static __device__ __attribute__((always_inline)) inline

typedef unsigned long long u64;

// first returns the index of this thread's first element.
DEV int first() {
	return __nvvm_read_ptx_sreg_ctaid_x() * __nvvm_read_ptx_sreg_ntid_x() + __nvvm_read_ptx_sreg_tid_x();
}

// stride returns the number of threads in the grid.
DEV int stride() {
	return __nvvm_read_ptx_sreg_nctaid_x() * __nvvm_read_ptx_sreg_ntid_x();
}

// Activations, in the order of train.Activation.
enum { RELU = 0, SIGMOID = 1, TANH = 2 };

// pow2 returns 2^k for -1022 <= k <= 1023.
DEV double pow2(int k) {
	u64 bits = (u64)(k + 1023) << 52;
	double d;
	__builtin_memcpy(&d, &bits, sizeof d);
	return d;
}

// exp_d returns e^x; it returns 0 below -708 (where 1+e^x rounds to 1,
// the only use here) and +Inf above 709.78.
DEV double exp_d(double x) {
	if (x > 709.782712893384) {
		return __builtin_inf();
	}
	if (x < -708.0) {
		return 0.0;
	}
	const double ln2_hi = 6.93147180369123816490e-01;
	const double ln2_lo = 1.90821492927058770002e-10;
	const double log2e = 1.44269504088896338700e+00;
	double kd = __builtin_rint(x * log2e);
	int k = (int)kd;
	double r = (x - kd * ln2_hi) - kd * ln2_lo;
	// Taylor series of e^r, |r| <= 0.35: the first omitted term is below
	// 2^-58 relative.
	double p = 1.0 / 6227020800.0;
	p = p * r + 1.0 / 479001600.0;
	p = p * r + 1.0 / 39916800.0;
	p = p * r + 1.0 / 3628800.0;
	p = p * r + 1.0 / 362880.0;
	p = p * r + 1.0 / 40320.0;
	p = p * r + 1.0 / 5040.0;
	p = p * r + 1.0 / 720.0;
	p = p * r + 1.0 / 120.0;
	p = p * r + 1.0 / 24.0;
	p = p * r + 1.0 / 6.0;
	p = p * r + 0.5;
	p = p * r + 1.0;
	p = p * r + 1.0;
	// Scale in two steps so that each factor stays a normal double.
	int k1 = k / 2;
	return p * pow2(k1) * pow2(k - k1);
}

// expm1_d returns e^x - 1, accurately near 0.
DEV double expm1_d(double x) {
	if (x > 0.5 || x < -0.5) {
		return exp_d(x) - 1.0;
	}
	// Taylor series to x^16: the first omitted term is below 2^-60
	// relative.
	double p = 1.0 / 20922789888000.0;
	p = p * x + 1.0 / 1307674368000.0;
	p = p * x + 1.0 / 87178291200.0;
	p = p * x + 1.0 / 6227020800.0;
	p = p * x + 1.0 / 479001600.0;
	p = p * x + 1.0 / 39916800.0;
	p = p * x + 1.0 / 3628800.0;
	p = p * x + 1.0 / 362880.0;
	p = p * x + 1.0 / 40320.0;
	p = p * x + 1.0 / 5040.0;
	p = p * x + 1.0 / 720.0;
	p = p * x + 1.0 / 120.0;
	p = p * x + 1.0 / 24.0;
	p = p * x + 1.0 / 6.0;
	p = p * x + 0.5;
	p = p * x + 1.0;
	return p * x;
}

// tanh_d returns tanh(x).
DEV double tanh_d(double x) {
	double a = __builtin_fabs(x);
	double t;
	if (a > 22.0) {
		t = 1.0; // 1 - tanh(22) < 2^-63
	} else {
		double e = expm1_d(2.0 * a);
		t = e / (e + 2.0);
	}
	return __builtin_copysign(t, x);
}

// int_bits returns the float whose bits are i (train.IndexBits).
DEV float int_bits(int i) {
	float f;
	__builtin_memcpy(&f, &i, sizeof f);
	return f;
}

// bits_int is train.BitsIndex.
DEV int bits_int(float f) {
	int i;
	__builtin_memcpy(&i, &f, sizeof i);
	return i;
}

// fill sets t[i] = v.
extern "C" __global__ void fill(float *t, int n, float v) {
	for (int i = first(); i < n; i += stride()) {
		t[i] = v;
	}
}

// activate sets y[i] = f(x[i]).
extern "C" __global__ void activate(int f, float *y, const float *x, int n) {
	for (int i = first(); i < n; i += stride()) {
		float v = x[i];
		switch (f) {
		case RELU:
			// v > 0 tested on the bits (positive, up to +Inf: not NaN),
			// or the compiler turns the select into max.f32, whose
			// result for -0 need not be Go's.
			y[i] = int_bits(bits_int(v) > 0 && bits_int(v) <= 0x7F800000 ? bits_int(v) : 0);
			break;
		case SIGMOID:
			y[i] = (float)(1.0 / (1.0 + exp_d(-(double)v)));
			break;
		case TANH:
			y[i] = (float)tanh_d((double)v);
			break;
		}
	}
}

// activate_grad sets dx[i] = dy[i] * f'(x[i]) from y[i] = f(x[i]).
extern "C" __global__ void activate_grad(int f, float *dx, const float *dy, const float *y, int n) {
	for (int i = first(); i < n; i += stride()) {
		float v = y[i];
		switch (f) {
		case RELU:
			dx[i] = v > 0 ? dy[i] : 0.0f;
			break;
		case SIGMOID:
			dx[i] = dy[i] * (v * (1.0f - v));
			break;
		case TANH:
			dx[i] = dy[i] * (1.0f - v * v);
			break;
		}
	}
}

// dropout_keep is train.DropoutKeep: SplitMix64 of seed and index.
DEV bool dropout_keep(u64 seed, unsigned int i, float rate) {
	u64 z = seed + (u64)i * 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	float u = (float)(z >> 40) * (1.0f / 16777216.0f);
	return u >= rate;
}

// dropout sets mask[i] = scale or 0 and y[i] = x[i] * mask[i]; scale is
// 1/(1-rate), computed by the caller in float.
extern "C" __global__ void dropout(float *y, float *mask, const float *x, int n, float rate, float scale, u64 seed) {
	for (int i = first(); i < n; i += stride()) {
		float m = dropout_keep(seed, (unsigned int)i, rate) ? scale : 0.0f;
		mask[i] = m;
		y[i] = x[i] * m;
	}
}

// mul sets d[i] = a[i] * b[i].
extern "C" __global__ void mul(float *d, const float *a, const float *b, int n) {
	for (int i = first(); i < n; i += stride()) {
		d[i] = a[i] * b[i];
	}
}

// im2col unfolds NHWC x into col, one thread per col element: row
// (img, oy, ox), column (ky, kx, ch).
extern "C" __global__ void im2col(float *col, const float *x, int N, int H, int W, int C, int K, int S, int P, int OH, int OW) {
	int cols = K * K * C;
	int total = N * OH * OW * cols;
	for (int i = first(); i < total; i += stride()) {
		int row = i / cols, j = i % cols;
		int ch = j % C, kx = (j / C) % K, ky = j / (C * K);
		int ox = row % OW, oy = (row / OW) % OH, img = row / (OW * OH);
		int iy = oy * S - P + ky, ix = ox * S - P + kx;
		float v = 0.0f;
		if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
			v = x[((img * H + iy) * W + ix) * C + ch];
		}
		col[i] = v;
	}
}

// col2im sets dx to the adjoint of im2col, one thread per dx element,
// summing in the CPU backend's order (ky, then kx).
extern "C" __global__ void col2im(float *dx, const float *col, int N, int H, int W, int C, int K, int S, int P, int OH, int OW) {
	int cols = K * K * C;
	int total = N * H * W * C;
	for (int i = first(); i < total; i += stride()) {
		int ch = i % C, ix = (i / C) % W, iy = (i / (C * W)) % H, img = i / (C * W * H);
		float sum = 0.0f;
		for (int ky = 0; ky < K; ky++) {
			int ty = iy + P - ky;
			if (ty < 0 || ty % S != 0 || ty / S >= OH) {
				continue;
			}
			int oy = ty / S;
			for (int kx = 0; kx < K; kx++) {
				int tx = ix + P - kx;
				if (tx < 0 || tx % S != 0 || tx / S >= OW) {
					continue;
				}
				int ox = tx / S;
				int row = (img * OH + oy) * OW + ox;
				sum += col[row * cols + (ky * K + kx) * C + ch];
			}
		}
		dx[i] = sum;
	}
}

// maxpool sets y to each window's maximum and arg to the index in x of its
// first maximum, one thread per output element.
extern "C" __global__ void maxpool(float *y, float *arg, const float *x, int N, int H, int W, int C, int size, int S, int OH, int OW) {
	int total = N * OH * OW * C;
	for (int o = first(); o < total; o += stride()) {
		int ch = o % C, ox = (o / C) % OW, oy = (o / (C * OW)) % OH, img = o / (C * OW * OH);
		float best = -__builtin_inff();
		int best_at = -1;
		for (int ky = 0; ky < size; ky++) {
			int iy = oy * S + ky;
			if (iy >= H) {
				break;
			}
			for (int kx = 0; kx < size; kx++) {
				int ix = ox * S + kx;
				if (ix >= W) {
					break;
				}
				int at = ((img * H + iy) * W + ix) * C + ch;
				float v = x[at];
				if (v > best || best_at < 0) {
					best = v;
					best_at = at;
				}
			}
		}
		y[o] = best;
		arg[o] = int_bits(best_at);
	}
}

// maxpool_grad sets dx[i] to the sum of dy over the windows whose arg is i,
// one thread per input element, in the CPU backend's order.
extern "C" __global__ void maxpool_grad(float *dx, const float *dy, const float *arg, int N, int H, int W, int C, int size, int S, int OH, int OW) {
	int total = N * H * W * C;
	for (int i = first(); i < total; i += stride()) {
		int ch = i % C, ix = (i / C) % W, iy = (i / (C * W)) % H, img = i / (C * W * H);
		// Output windows covering (iy, ix): see poolWindows in cpu.go.
		int oy0 = iy - size + 1 > 0 ? (iy - size + S) / S : 0;
		int oy1 = iy / S < OH - 1 ? iy / S : OH - 1;
		int ox0 = ix - size + 1 > 0 ? (ix - size + S) / S : 0;
		int ox1 = ix / S < OW - 1 ? ix / S : OW - 1;
		float sum = 0.0f;
		for (int oy = oy0; oy <= oy1; oy++) {
			for (int ox = ox0; ox <= ox1; ox++) {
				int o = ((img * OH + oy) * OW + ox) * C + ch;
				if (bits_int(arg[o]) == i) {
					sum += dy[o];
				}
			}
		}
		dx[i] = sum;
	}
}

// sgd: v = momentum*v + g + decay*w; w -= lr*v.
extern "C" __global__ void sgd(float *w, const float *g, float *v, int n, float lr, float momentum, float decay) {
	for (int i = first(); i < n; i += stride()) {
		float vi = momentum * v[i] + g[i] + decay * w[i];
		v[i] = vi;
		w[i] = w[i] - lr * vi;
	}
}

// adam: g' = g + decay*w; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'*g';
// w -= lr * (m/c1) / (sqrt(v/c2) + eps), with the bias corrections c1 and
// c2 computed on the host (train.AdamCorrections).
extern "C" __global__ void adam(float *w, const float *g, float *m, float *v, int n, float lr, float beta1, float beta2, float eps, float decay, float c1, float c2) {
	for (int i = first(); i < n; i += stride()) {
		float wi = w[i];
		float gi = g[i] + decay * wi;
		float mi = beta1 * m[i] + (1.0f - beta1) * gi;
		float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] = wi - lr * (mi / c1) / (__builtin_sqrtf(vi / c2) + eps);
	}
}
