package market

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// InferRequest is a call to a model a provider serves: the service that
// names the deployment, and the examples, each a flat row of the model's
// input values.
type InferRequest struct {
	Service  string      `json:"service"`
	Examples [][]float32 `json:"examples"`
}

// InferResult is the provider's signed answer to one InferRequest: the
// outputs (class probabilities for a classifier), one row per example.
// Request is the hash of the request as sent, so that an answer cannot be
// passed off as another call's.
type InferResult struct {
	Service  string      `json:"service"`
	Request  string      `json:"request"`
	Outputs  [][]float32 `json:"outputs"`
	IssuedAt time.Time   `json:"issued_at"`
}

// ErrBadAnswer: an answer to a call that is not for that call, or not of
// its shape.
var ErrBadAnswer = errors.New("bad answer")

// RequestHash is the hex SHA-256 of a request's encoding, as InferResult
// names it.
func RequestHash(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// Check checks the result answers the request encoded as req, with one
// row of width values per example of n.
func (r InferResult) Check(service string, req []byte, n, width int) error {
	switch {
	case r.Service != service:
		return fmt.Errorf("%w: it is for service %q, not %q", ErrBadAnswer, r.Service, service)
	case r.Request != RequestHash(req):
		return fmt.Errorf("%w: it is for another request", ErrBadAnswer)
	case len(r.Outputs) != n:
		return fmt.Errorf("%w: it has %d rows for %d examples", ErrBadAnswer, len(r.Outputs), n)
	}
	for i, row := range r.Outputs {
		if width > 0 && len(row) != width {
			return fmt.Errorf("%w: its row %d has %d values, want %d", ErrBadAnswer, i, len(row), width)
		}
	}
	return nil
}
