// Package serving answers calls to trained models that a provider serves
// over the swarm: a caller sends examples on InferProtocol, the provider
// batches calls to one model dynamically (a short window, a maximum batch
// size), runs the trainer's forward pass once per batch and answers each
// call with its rows of outputs, signed by its peer key. Call is the
// caller's side: it checks that the answer is the provider's, for this
// request, of the right shape.
package serving
