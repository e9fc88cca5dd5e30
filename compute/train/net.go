package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// param is one trainable tensor with its gradient and optimizer state.
type param struct {
	name  string
	shape []int
	n     int
	w, g  Tensor
	m, v  Tensor // optimizer state (v only for Adam's second moment)
}

// layer is one step of the network. Tensors it returns are its own and
// stay valid until its next call.
type layer interface {
	forward(x Tensor, batch int, training bool, seed uint64) Tensor
	// backward returns the gradient for the layer's input, or nil when
	// needInput is false; parameter gradients are overwritten.
	backward(dy Tensor, batch int, needInput bool) Tensor
	params() []*param
}

// network is a built model on one backend.
type network struct {
	b        Backend
	layers   []layer
	in, out  int // features per example at the input and output
	maxBatch int
	ones     Tensor
	softmax  bool // the model ends with softmax (applied with the loss)
}

// buildNetwork allocates the model's layers for batches of up to
// maxBatch examples and initializes the weights from seed (He-uniform for
// layers followed by relu, Glorot-uniform otherwise; biases zero).
func buildNetwork(b Backend, m trainspec.Model, maxBatch int, seed uint64) (*network, error) {
	shapes, err := m.Shapes()
	if err != nil {
		return nil, err
	}
	net := &network{b: b, in: shapes[0].Size(), out: shapes[len(shapes)-1].Size(), maxBatch: maxBatch}
	rng := rand.New(rand.NewPCG(seed, 0x6379787769))
	onesLen := maxBatch
	for i, l := range m.Layers {
		in, out := shapes[i], shapes[i+1]
		nextReLU := i+1 < len(m.Layers) && m.Layers[i+1].Type == trainspec.LayerReLU
		name := fmt.Sprintf("layers.%d", i)
		var ly layer
		switch l.Type {
		case trainspec.LayerDense:
			d := &dense{b: net, in: in[0], out: l.Units}
			d.wp = newParam(b, name+".weight", []int{in[0], l.Units})
			d.bp = newParam(b, name+".bias", []int{l.Units})
			initUniform(b, d.wp, in[0], l.Units, nextReLU, rng)
			d.y, d.dx = b.New(maxBatch*l.Units), b.New(maxBatch*in[0])
			ly = d
		case trainspec.LayerConv2D:
			c := &conv{b: net, geom: ConvGeom{H: in[0], W: in[1], C: in[2], Kernel: l.Kernel, Stride: l.Stride,
				Pad: l.Padding, OutH: out[0], OutW: out[1]}, filters: l.Filters}
			kk := l.Kernel * l.Kernel * in[2]
			c.wp = newParam(b, name+".weight", []int{l.Kernel, l.Kernel, in[2], l.Filters})
			c.bp = newParam(b, name+".bias", []int{l.Filters})
			initUniform(b, c.wp, kk, l.Filters*l.Kernel*l.Kernel, nextReLU, rng)
			rows := maxBatch * out[0] * out[1]
			onesLen = max(onesLen, rows)
			c.col, c.dcol = b.New(rows*kk), b.New(rows*kk)
			c.y, c.dx = b.New(rows*l.Filters), b.New(maxBatch*in.Size())
			ly = c
		case trainspec.LayerMaxPool:
			p := &pool{b: b, geom: PoolGeom{H: in[0], W: in[1], C: in[2], Size: l.Size, Stride: l.Stride, OutH: out[0], OutW: out[1]}}
			p.y, p.arg, p.dx = b.New(maxBatch*out.Size()), b.New(maxBatch*out.Size()), b.New(maxBatch*in.Size())
			ly = p
		case trainspec.LayerFlatten:
			ly = flatten{}
		case trainspec.LayerDropout:
			n := in.Size()
			ly = &dropout{b: b, size: n, rate: float32(l.Rate), y: b.New(maxBatch * n), mask: b.New(maxBatch * n), dx: b.New(maxBatch * n)}
		case trainspec.LayerReLU, trainspec.LayerSigmoid, trainspec.LayerTanh:
			f := map[string]Activation{trainspec.LayerReLU: ReLU, trainspec.LayerSigmoid: Sigmoid, trainspec.LayerTanh: Tanh}[l.Type]
			n := in.Size()
			ly = &activation{b: b, f: f, size: n, y: b.New(maxBatch * n), dx: b.New(maxBatch * n)}
		case trainspec.LayerSoftmax:
			net.softmax = true
			continue
		default:
			return nil, fmt.Errorf("layers[%d]: unknown type %q", i, l.Type)
		}
		net.layers = append(net.layers, ly)
	}
	net.ones = b.New(onesLen)
	b.Fill(net.ones, 1)
	return net, nil
}

func newParam(b Backend, name string, shape []int) *param {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &param{name: name, shape: shape, n: n, w: b.New(n), g: b.New(n), m: b.New(n), v: b.New(n)}
}

// initUniform draws p's weights uniformly: He for layers feeding relu,
// Glorot otherwise.
func initUniform(b Backend, p *param, fanIn, fanOut int, he bool, rng *rand.Rand) {
	limit := math.Sqrt(6 / float64(fanIn+fanOut))
	if he {
		limit = math.Sqrt(6 / float64(fanIn))
	}
	w := make([]float32, p.n)
	for i := range w {
		w[i] = float32((rng.Float64()*2 - 1) * limit)
	}
	b.Write(p.w, w)
}

// forward runs the network on the first batch rows of x and returns the
// output (logits when the model ends with softmax).
func (n *network) forward(x Tensor, batch int, training bool, seed uint64) Tensor {
	for i, l := range n.layers {
		x = l.forward(x, batch, training, seed+uint64(i)*0x9E3779B9)
	}
	return x
}

// backward propagates the output gradient dy back through the network,
// leaving every parameter's gradient in place.
func (n *network) backward(dy Tensor, batch int) {
	for i := len(n.layers) - 1; i >= 0; i-- {
		dy = n.layers[i].backward(dy, batch, i > 0)
	}
}

func (n *network) params() []*param {
	var ps []*param
	for _, l := range n.layers {
		ps = append(ps, l.params()...)
	}
	return ps
}

type dense struct {
	b       *network
	in, out int
	wp, bp  *param
	x       Tensor
	y, dx   Tensor
}

func (d *dense) forward(x Tensor, batch int, _ bool, _ uint64) Tensor {
	d.x = x
	b := d.b.b
	b.Gemm(false, false, batch, d.out, d.in, 1, x, d.wp.w, 0, d.y)
	b.Gemm(false, false, batch, d.out, 1, 1, d.b.ones, d.bp.w, 1, d.y)
	return d.y
}

func (d *dense) backward(dy Tensor, batch int, needInput bool) Tensor {
	b := d.b.b
	b.Gemm(true, false, d.in, d.out, batch, 1, d.x, dy, 0, d.wp.g)
	b.Gemm(true, false, 1, d.out, batch, 1, d.b.ones, dy, 0, d.bp.g)
	if !needInput {
		return nil
	}
	b.Gemm(false, true, batch, d.in, d.out, 1, dy, d.wp.w, 0, d.dx)
	return d.dx
}

func (d *dense) params() []*param { return []*param{d.wp, d.bp} }

type conv struct {
	b         *network
	geom      ConvGeom
	filters   int
	wp, bp    *param
	col, dcol Tensor
	y, dx     Tensor
}

func (c *conv) forward(x Tensor, batch int, _ bool, _ uint64) Tensor {
	b, g := c.b.b, c.geom
	g.N = batch
	b.Im2col(c.col, x, g)
	rows := g.ColRows()
	b.Gemm(false, false, rows, c.filters, g.ColCols(), 1, c.col, c.wp.w, 0, c.y)
	b.Gemm(false, false, rows, c.filters, 1, 1, c.b.ones, c.bp.w, 1, c.y)
	return c.y
}

func (c *conv) backward(dy Tensor, batch int, needInput bool) Tensor {
	b, g := c.b.b, c.geom
	g.N = batch
	rows := g.ColRows()
	b.Gemm(true, false, g.ColCols(), c.filters, rows, 1, c.col, dy, 0, c.wp.g)
	b.Gemm(true, false, 1, c.filters, rows, 1, c.b.ones, dy, 0, c.bp.g)
	if !needInput {
		return nil
	}
	b.Gemm(false, true, rows, g.ColCols(), c.filters, 1, dy, c.wp.w, 0, c.dcol)
	b.Col2im(c.dx, c.dcol, g)
	return c.dx
}

func (c *conv) params() []*param { return []*param{c.wp, c.bp} }

type pool struct {
	b          Backend
	geom       PoolGeom
	y, arg, dx Tensor
}

func (p *pool) forward(x Tensor, batch int, _ bool, _ uint64) Tensor {
	g := p.geom
	g.N = batch
	p.b.MaxPool(p.y, p.arg, x, g)
	return p.y
}

func (p *pool) backward(dy Tensor, batch int, needInput bool) Tensor {
	if !needInput {
		return nil
	}
	g := p.geom
	g.N = batch
	p.b.MaxPoolGrad(p.dx, dy, p.arg, g)
	return p.dx
}

func (p *pool) params() []*param { return nil }

// flatten changes nothing: NHWC images are already rows of features.
type flatten struct{}

func (flatten) forward(x Tensor, _ int, _ bool, _ uint64) Tensor { return x }
func (flatten) backward(dy Tensor, _ int, _ bool) Tensor         { return dy }
func (flatten) params() []*param                                 { return nil }

type dropout struct {
	b           Backend
	size        int
	rate        float32
	y, mask, dx Tensor
	active      bool
}

func (d *dropout) forward(x Tensor, batch int, training bool, seed uint64) Tensor {
	d.active = training && d.rate > 0
	if !d.active {
		return x
	}
	d.b.Dropout(d.y, d.mask, x, batch*d.size, d.rate, seed)
	return d.y
}

func (d *dropout) backward(dy Tensor, batch int, needInput bool) Tensor {
	if !needInput || !d.active {
		return dy
	}
	d.b.Mul(d.dx, dy, d.mask, batch*d.size)
	return d.dx
}

func (d *dropout) params() []*param { return nil }

type activation struct {
	b     Backend
	f     Activation
	size  int
	y, dx Tensor
}

func (a *activation) forward(x Tensor, batch int, _ bool, _ uint64) Tensor {
	a.b.Activate(a.f, a.y, x, batch*a.size)
	return a.y
}

func (a *activation) backward(dy Tensor, batch int, needInput bool) Tensor {
	if !needInput {
		return nil
	}
	a.b.ActivateGrad(a.f, a.dx, dy, a.y, batch*a.size)
	return a.dx
}

func (a *activation) params() []*param { return nil }
