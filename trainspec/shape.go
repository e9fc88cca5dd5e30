package trainspec

import (
	"errors"
	"fmt"
	"strings"
)

// Shape is the shape of one example at some point of a model: [n] or
// [height, width, channels].
type Shape []int

// ShapeString writes a shape as 28×28×1.
func ShapeString(s Shape) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "×")
}

// Size is the number of elements of a shape.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Shapes infers the shape after each layer: Shapes()[0] is the input and
// Shapes()[i+1] the output of layer i. The first misfit is an error that
// names the layer.
func (m Model) Shapes() ([]Shape, error) {
	switch {
	case len(m.Input) != 1 && len(m.Input) != 3:
		return nil, fmt.Errorf("input: %v must be [features] or [height, width, channels]", m.Input)
	case len(m.Layers) == 0:
		return nil, errors.New("layers: required")
	case len(m.Layers) > maxLayers:
		return nil, fmt.Errorf("layers: %d layers, at most %d", len(m.Layers), maxLayers)
	}
	in := Shape(append([]int(nil), m.Input...))
	for _, d := range in {
		if d < 1 || d > maxDim {
			return nil, fmt.Errorf("input: %s has a dimension outside 1..%d", ShapeString(in), maxDim)
		}
	}
	if in.Size() > maxShapeValues {
		return nil, fmt.Errorf("input: %s has more than %d values", ShapeString(in), maxShapeValues)
	}
	shapes := []Shape{in}
	params := 0
	for i, l := range m.Layers {
		out, n, err := l.outShape(in, i == len(m.Layers)-1)
		if err != nil {
			return nil, fmt.Errorf("layers[%d] (%s): %w", i, l.Type, err)
		}
		if params += n; params > maxParams {
			return nil, fmt.Errorf("layers[%d] (%s): the model has more than %d parameters", i, l.Type, maxParams)
		}
		if out.Size() > maxShapeValues {
			return nil, fmt.Errorf("layers[%d] (%s): its output %s has more than %d values", i, l.Type, ShapeString(out), maxShapeValues)
		}
		shapes = append(shapes, out)
		in = out
	}
	if last := shapes[len(shapes)-1]; len(last) != 1 {
		return nil, fmt.Errorf("the output is %s; end with flatten and dense layers", ShapeString(last))
	}
	return shapes, nil
}

// outShape returns a layer's output shape for input shape in, and its
// parameter count.
func (l Layer) outShape(in Shape, last bool) (Shape, int, error) {
	image := len(in) == 3
	need := func(fields ...string) error {
		set := map[string]bool{"units": l.Units != 0, "filters": l.Filters != 0, "kernel": l.Kernel != 0,
			"stride": l.Stride != 0, "padding": l.Padding != 0, "size": l.Size != 0, "rate": l.Rate != 0}
		for _, f := range fields {
			delete(set, f)
		}
		for f, on := range set {
			if on {
				return fmt.Errorf("%s does not apply to %s", f, l.Type)
			}
		}
		return nil
	}
	switch l.Type {
	case LayerDense:
		if err := need("units"); err != nil {
			return nil, 0, err
		}
		if image {
			return nil, 0, fmt.Errorf("input is %s; add a flatten layer before it", ShapeString(in))
		}
		if l.Units < 1 || l.Units > maxDim {
			return nil, 0, fmt.Errorf("units %d is outside 1..%d", l.Units, maxDim)
		}
		return Shape{l.Units}, in[0]*l.Units + l.Units, nil
	case LayerConv2D:
		if err := need("filters", "kernel", "stride", "padding"); err != nil {
			return nil, 0, err
		}
		if !image {
			return nil, 0, fmt.Errorf("input is %s; conv2d needs [height, width, channels]", ShapeString(in))
		}
		switch {
		case l.Filters < 1 || l.Filters > 4096:
			return nil, 0, fmt.Errorf("filters %d is outside 1..4096", l.Filters)
		case l.Kernel < 1 || l.Kernel > 32:
			return nil, 0, fmt.Errorf("kernel %d is outside 1..32", l.Kernel)
		case l.Stride < 1 || l.Stride > 32:
			return nil, 0, fmt.Errorf("stride %d is outside 1..32", l.Stride)
		case l.Padding < 0 || l.Padding >= l.Kernel:
			return nil, 0, fmt.Errorf("padding %d is outside 0..kernel-1", l.Padding)
		}
		h, w := (in[0]+2*l.Padding-l.Kernel)/l.Stride+1, (in[1]+2*l.Padding-l.Kernel)/l.Stride+1
		if in[0]+2*l.Padding < l.Kernel || in[1]+2*l.Padding < l.Kernel {
			return nil, 0, fmt.Errorf("kernel %d does not fit input %s with padding %d", l.Kernel, ShapeString(in), l.Padding)
		}
		return Shape{h, w, l.Filters}, l.Kernel*l.Kernel*in[2]*l.Filters + l.Filters, nil
	case LayerMaxPool:
		if err := need("size", "stride"); err != nil {
			return nil, 0, err
		}
		if !image {
			return nil, 0, fmt.Errorf("input is %s; maxpool needs [height, width, channels]", ShapeString(in))
		}
		if l.Size < 1 || l.Size > 32 || l.Stride < 1 || l.Stride > 32 {
			return nil, 0, fmt.Errorf("size %d and stride %d must be within 1..32", l.Size, l.Stride)
		}
		if in[0] < l.Size || in[1] < l.Size {
			return nil, 0, fmt.Errorf("window %d does not fit input %s", l.Size, ShapeString(in))
		}
		return Shape{(in[0]-l.Size)/l.Stride + 1, (in[1]-l.Size)/l.Stride + 1, in[2]}, 0, nil
	case LayerFlatten:
		if err := need(); err != nil {
			return nil, 0, err
		}
		return Shape{in.Size()}, 0, nil
	case LayerDropout:
		if err := need("rate"); err != nil {
			return nil, 0, err
		}
		if !(l.Rate >= 0 && l.Rate < 1) {
			return nil, 0, fmt.Errorf("rate %g is outside [0, 1)", l.Rate)
		}
		return in, 0, nil
	case LayerReLU, LayerSigmoid, LayerTanh:
		return in, 0, need()
	case LayerSoftmax:
		if err := need(); err != nil {
			return nil, 0, err
		}
		if !last {
			return nil, 0, errors.New("softmax must be the last layer")
		}
		if image {
			return nil, 0, fmt.Errorf("input is %s; add flatten and dense layers before it", ShapeString(in))
		}
		return in, 0, nil
	case "":
		return nil, 0, errors.New("type is required (dense, conv2d, maxpool, flatten, dropout, relu, sigmoid, tanh, softmax)")
	default:
		return nil, 0, fmt.Errorf("type %q is not one of dense, conv2d, maxpool, flatten, dropout, relu, sigmoid, tanh, softmax", l.Type)
	}
}
