// Package serve is the executor of serve jobs: it loads the trained
// weights a job names into the trainer's inference path and hands them to
// a Registry, which answers calls to them (package serving on a node), for
// as long as the job runs: until its wall time ends, when the deployment
// is over and the job succeeds, or until it is cancelled.
package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/trainspec"
)

// Kind is the job kind the executor runs.
const Kind = "serve"

// Registry answers calls to the models it is given, by service name.
type Registry interface {
	// Serve starts answering calls to the service name with m, loaded
	// from the weights whose CID is model, as the instance id (a job;
	// replicas of one service share its name).
	Serve(id, name, model string, m *train.Model) error
	// Stop stops the instance id.
	Stop(id string) bool
}

// Section is the serve section of a job spec.
type Section struct {
	// Model is the CID of the weights (a train job's model output).
	Model string `json:"model"`
	// MaxBatch is the most examples one forward pass takes.
	MaxBatch int `json:"max_batch,omitempty"`
	// Service names the deployment; empty, the job's ID.
	Service string `json:"service,omitempty"`
}

// Executor runs serve jobs.
type Executor struct {
	reg Registry
}

// New returns an executor that serves through reg.
func New(reg Registry) *Executor { return &Executor{reg: reg} }

// Kind implements compute.Executor.
func (e *Executor) Kind() string { return Kind }

// Close implements compute.Executor; it holds nothing of its own.
func (e *Executor) Close(context.Context) error { return nil }

// Stage implements compute.Executor: it reads the weights the serve
// section names, within the job's memory.
func (e *Executor) Stage(ctx context.Context, job *compute.Job, src compute.Source) error {
	var s Section
	if err := job.DecodeSpec(Kind, &s); err != nil {
		return err
	}
	if s.Model == "" {
		return fmt.Errorf("%w: serve section names no model", compute.ErrBadSpec)
	}
	limit := int64(train.DefaultMaxModelBytes)
	if job.MemoryMiB > 0 {
		limit = min(limit, int64(job.MemoryMiB)<<20)
	}
	w, err := src.Read(ctx, "model", s.Model, limit)
	if err != nil {
		return err
	}
	job.Program = w
	return nil
}

// resultMargin is how long before its context's deadline a deployment
// ends, so that its result still reaches the requester in time.
const resultMargin = 5 * time.Second

// Run implements compute.Executor: it loads the model, within the job's
// memory, and serves it under the job's ID until its wall time ends, or
// shortly before ctx's deadline (the award's), when the deployment is
// over and the job succeeds; or until ctx is cancelled.
func (e *Executor) Run(ctx context.Context, job compute.Job) (compute.Outcome, error) {
	started := time.Now()
	end := started.Add(job.Wall)
	if d, ok := ctx.Deadline(); ok && d.Add(-resultMargin).Before(end) {
		end = d.Add(-resultMargin)
	}
	var s Section
	if err := job.DecodeSpec(Kind, &s); err != nil {
		return compute.Outcome{ExitCode: 1, Reason: compute.ReasonBadProgram, Detail: err.Error()}, nil
	}
	if s.MaxBatch <= 0 {
		s.MaxBatch = 64
	}
	opts := train.LoadOptions{MaxBatch: s.MaxBatch, MaxBytes: int64(len(job.Program))}
	if job.MemoryMiB > 0 {
		opts.MaxMemoryBytes = int64(job.MemoryMiB) << 20
	}
	m, err := train.LoadModel(bytes.NewReader(job.Program), opts)
	switch {
	case errors.Is(err, train.ErrModelMemory):
		return compute.Outcome{ExitCode: 1, Reason: compute.ReasonMemory, Detail: err.Error()}, nil
	case err != nil:
		return compute.Outcome{ExitCode: 1, Reason: compute.ReasonBadProgram, Detail: err.Error()}, nil
	}
	name := s.Service
	if name == "" {
		name = job.ID
	}
	if err := e.reg.Serve(job.ID, name, s.Model, m); err != nil {
		return compute.Outcome{ExitCode: 1, Reason: compute.ReasonExit,
			Detail: "an earlier attempt of this deployment is still served here: " + err.Error()}, nil
	}
	defer e.reg.Stop(job.ID)
	if job.Stdout != nil {
		fmt.Fprintf(job.Stdout, "serving %s: input %s, %d outputs, batches of up to %d, until %s\n",
			name, trainspec.ShapeString(m.InputShape()), m.OutputSize(), m.MaxBatch(), end.UTC().Format(time.RFC3339))
	}
	over := time.NewTimer(time.Until(end))
	defer over.Stop()
	select {
	case <-over.C:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return compute.Outcome{ExitCode: -1, Reason: compute.ReasonCancelled, Detail: "stopped: " + ctx.Err().Error(),
				Wall: time.Since(started), StartedAt: started}, nil
		}
	}
	if job.Stdout != nil {
		fmt.Fprintf(job.Stdout, "deployment over after %s\n", time.Since(started).Round(time.Second))
	}
	return compute.Outcome{Wall: time.Since(started), StartedAt: started}, nil
}
