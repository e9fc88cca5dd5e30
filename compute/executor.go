package compute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Executor runs jobs of one kind in a sandbox.
type Executor interface {
	// Kind is the job kind it runs ("wasm").
	Kind() string
	// Stage reads the job's Spec, fetches what it names from src (the
	// program, a dataset) into memory or under InDir, and fills in
	// Program, Args and Env for Run. A Spec it cannot read is ErrBadSpec;
	// the errors of src come back wrapped.
	Stage(ctx context.Context, job *Job, src Source) error
	// Run runs a job to its end. A job that fails (non-zero exit, limits,
	// a trap) is an Outcome with a Reason, not an error; errors are for
	// jobs that could not be started at all (a module that is not valid).
	Run(ctx context.Context, job Job) (Outcome, error)
	// Close releases the executor's caches.
	Close(ctx context.Context) error
}

// Job is one run of a program.
type Job struct {
	// ID names the job in logs.
	ID string
	// Spec is the job's section of its job spec (the settings of its
	// kind, as JSON), which Stage reads.
	Spec json.RawMessage
	// Program is the code, filled in by Stage: for wasm, the module's
	// bytes; for train, the train section.
	Program []byte
	Args    []string
	Env     map[string]string
	// InDir is a host folder mounted read-only at /in; each input is an
	// entry in it.
	InDir string
	// OutDir is a host folder mounted writable at /out.
	OutDir string
	// CPU is the number of cores the job asked for.
	CPU int
	// MemoryMiB caps the job's memory.
	MemoryMiB int
	// OutBytes caps what the job stores in OutDir: what is left of its
	// disk limit once its inputs are in InDir.
	OutBytes int64
	// Wall caps the job's run time.
	Wall time.Duration
	// Stdout and Stderr receive the job's output as it is written.
	Stdout, Stderr io.Writer
	// Metrics receives training metrics as JSON lines, live (train jobs).
	Metrics io.Writer
	// GPUs is the number of GPUs the job asked for (0: CPU only).
	GPUs int
}

// Source brings a job's content to the provider by content ID, within
// what is left of the job's disk limit.
type Source interface {
	// Fetch writes the content id (a file or a folder) to path; what
	// names it in errors, and limit > 0 bounds its size further.
	Fetch(ctx context.Context, what, id, path string, limit int64) error
	// Read returns the bytes of the file id, at most limit; the provider
	// may keep them in memory for later jobs, so the caller must not
	// modify them.
	Read(ctx context.Context, what, id string, limit int64) ([]byte, error)
}

// DecodeSpec decodes the job's section of its spec into v, refusing
// unknown fields; what it cannot read is ErrBadSpec.
func (j *Job) DecodeSpec(kind string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(j.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s section: %w", ErrBadSpec, kind, err)
	}
	return nil
}

// ErrBadSpec: a job's section of its spec is not one its executor reads.
var ErrBadSpec = errors.New("not a job spec this executor reads")

// Reasons a job ended without success.
const (
	ReasonExit       = "exit"        // non-zero exit code
	ReasonWallTime   = "wall-time"   // ran past its wall-time limit
	ReasonMemory     = "memory"      // asked for more than its memory limit
	ReasonTrap       = "trap"        // the program crashed
	ReasonCancelled  = "cancelled"   // stopped from outside
	ReasonBadProgram = "bad-program" // not a program this executor can run
	ReasonBadInput   = "bad-input"   // an input is not in the format the job says
	ReasonDiverged   = "diverged"    // training's loss became NaN or infinite
	ReasonDisk       = "disk"        // wrote more to /out than its disk limit
	ReasonSandbox    = "sandbox"     // tried to reach outside its sandbox
)

// Outcome is how a job ended.
type Outcome struct {
	ExitCode int
	// Reason is empty on success, else one of the Reason constants.
	Reason string
	// Detail says more about the reason, for people.
	Detail      string
	Wall        time.Duration
	CompileTime time.Duration
	// StartedAt is when the program's code began to run.
	StartedAt time.Time
	// Metrics are a train job's final figures (loss, accuracy, ...).
	Metrics map[string]float64
	// PeakMemory is the most resident memory the job's process used, in
	// bytes, where the executor measures it (0 otherwise).
	PeakMemory int64
}

// OK reports whether the job succeeded.
func (o Outcome) OK() bool { return o.Reason == "" && o.ExitCode == 0 }
