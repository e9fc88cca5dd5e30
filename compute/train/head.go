package train

import (
	"math"

	"github.com/cyxwiz/cyxwiz/trainspec"
)

// head computes the loss, its gradient for the network's output and the
// number of correct predictions, on the host: the output is small next to
// the work in the layers, and one implementation keeps every backend's
// losses identical.
type head struct {
	loss     string
	softmax  bool // apply softmax to the output first (mse after softmax)
	classes  int
	accuracy bool
	grad     []float32
	probs    []float64
}

func newHead(loss string, softmax bool, batch, classes int) *head {
	return &head{loss: loss, softmax: softmax, classes: classes, accuracy: classes > 1,
		grad: make([]float32, batch*classes), probs: make([]float64, classes)}
}

// lossGrad returns the mean loss over the rows of out (one per example
// idx[i], labelled labels[idx[i]]) and the correct count, and leaves
// dLoss/dOut in h.grad.
func (h *head) lossGrad(out []float32, labels []float32, idx []int) (float64, int) {
	n, c := len(idx), h.classes
	var total float64
	right := 0
	for i, ex := range idx {
		row, g := out[i*c:(i+1)*c], h.grad[i*c:(i+1)*c]
		label := labels[ex]
		if h.accuracy && argmax(row) == int(label) {
			right++
		}
		if h.loss == trainspec.LossCrossEntropy || h.softmax {
			softmax(h.probs, row)
		}
		switch h.loss {
		case trainspec.LossCrossEntropy:
			y := int(label)
			total -= math.Log(math.Max(h.probs[y], 1e-30))
			for j := range g {
				p := h.probs[j]
				if j == y {
					p--
				}
				g[j] = float32(p / float64(n))
			}
			if math.IsNaN(float64(row[y])) {
				total = math.NaN()
			}
		case trainspec.LossMSE:
			var dot float64
			for j := range g {
				o := float64(row[j])
				if h.softmax {
					o = h.probs[j]
				}
				t := label64(label, j, c)
				d := o - t
				total += d * d / float64(c)
				dj := 2 * d / float64(n*c)
				h.probs[j] = o
				g[j] = float32(dj)
				dot += dj * o
			}
			if h.softmax {
				// Through the softmax: dz = s * (dO - sum(dO*s)).
				for j := range g {
					g[j] = float32(h.probs[j] * (float64(g[j]) - dot))
				}
			}
		}
	}
	return total / float64(n), right
}

// label64 is the target of output j for a label: the value itself for a
// single output, else one-hot.
func label64(label float32, j, classes int) float64 {
	if classes == 1 {
		return float64(label)
	}
	if int(label) == j {
		return 1
	}
	return 0
}

func argmax(row []float32) int {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return best
}

// softmax writes the softmax of row to p, in float64.
func softmax(p []float64, row []float32) {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, float64(v))
	}
	var sum float64
	for j, v := range row {
		p[j] = math.Exp(float64(v) - m)
		sum += p[j]
	}
	for j := range p {
		p[j] /= sum
	}
}
