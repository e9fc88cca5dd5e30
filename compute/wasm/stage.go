package wasm

import (
	"context"
	"fmt"

	"github.com/cyxwiz/cyxwiz/compute"
)

// MaxModuleBytes bounds a module: the executor holds it in memory.
const MaxModuleBytes = 128 << 20

// Section is the wasm section of a job spec: the module to run, by
// content ID, and its arguments and environment.
type Section struct {
	Module string            `json:"module"`
	Args   []string          `json:"args,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
}

// Stage implements compute.Executor: it reads the module named by the
// job's wasm section from src.
func (e *Executor) Stage(ctx context.Context, job *compute.Job, src compute.Source) error {
	var s Section
	if err := job.DecodeSpec("wasm", &s); err != nil {
		return err
	}
	if s.Module == "" {
		return fmt.Errorf("%w: wasm section names no module", compute.ErrBadSpec)
	}
	mod, err := src.Read(ctx, "module", s.Module, MaxModuleBytes)
	if err != nil {
		return err
	}
	job.Program, job.Args, job.Env = mod, s.Args, s.Env
	return nil
}
