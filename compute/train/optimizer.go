package train

import "github.com/cyxwiz/cyxwiz/trainspec"

// optimizer applies one update to every parameter.
type optimizer struct {
	b    Backend
	spec trainspec.Optimizer
	t    int
}

func newOptimizer(b Backend, s trainspec.Optimizer) *optimizer { return &optimizer{b: b, spec: s} }

func (o *optimizer) step(params []*param, lr float64) {
	o.t++
	s := o.spec
	for _, p := range params {
		switch s.Type {
		case trainspec.OptimizerAdam:
			o.b.Adam(p.w, p.g, p.m, p.v, p.n, float32(lr), float32(s.Beta1), float32(s.Beta2),
				float32(s.Epsilon), float32(s.WeightDecay), o.t)
		default:
			o.b.SGD(p.w, p.g, p.m, p.n, float32(lr), float32(s.Momentum), float32(s.WeightDecay))
		}
	}
}
