package api

import "context"

// Inference method names.
const (
	MethodInferCall = "infer.call"
)

// InferCallParams are the parameters of infer.call.
type InferCallParams struct {
	// Service names the deployment: the ID of the serve job.
	Service string `json:"service"`
	// Provider is the peer serving it; for a serve job this node
	// submitted, it may be left out and the job's provider is called.
	Provider string `json:"provider,omitempty"`
	// Examples are the inputs, each a flat row of the model's input
	// values (images NHWC, scaled as the training data was).
	Examples [][]float32 `json:"examples"`
}

// InferCallResult is the result of infer.call.
type InferCallResult struct {
	// Outputs has one row per example: class probabilities for a
	// classifier, checked to be signed by Provider for this call.
	Outputs  [][]float32 `json:"outputs"`
	Provider string      `json:"provider"`
	// Paid is, for a priced service, the cumulative amount this node's
	// budget with the provider has promised it, in base units of the
	// service's mint.
	Paid uint64 `json:"paid,omitempty"`
}

// InferCall calls infer.call.
func (c *Client) InferCall(ctx context.Context, p InferCallParams) (InferCallResult, error) {
	var out InferCallResult
	err := c.Call(ctx, MethodInferCall, p, &out)
	return out, err
}
