package market

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/trainspec"
	"github.com/ipfs/go-cid"
	"github.com/mr-tron/base58"
)

// Job kinds.
const (
	KindWASM  = "wasm"
	KindTrain = trainspec.Kind
	// KindServe serves a trained model: the provider answers calls to it
	// (see package serving) until the job's wall time ends or it is
	// cancelled.
	KindServe = "serve"
)

// Verification modes.
const (
	VerifyNone      = "none"
	VerifyReplicate = "replicate"
	// VerifySpot checks a share of jobs (verification.rate): each one
	// checked is run again on another provider and compared.
	VerifySpot = "spot"
)

// Limits on a spec's parts.
const (
	MaxSpecBytes   = 64 << 10
	maxArgs        = 256
	maxArgBytes    = 4096
	maxEnv         = 128
	maxInputs      = 64
	maxOutputs     = 64
	maxOutputBytes = 4 << 30
	maxWallSeconds = 7 * 24 * 3600
	maxWASMMemory  = 4096 // MiB: wasm32 addresses 4 GiB
)

// Spec is a job as a user writes it (see the job spec section of the
// design). Field names are part of the product contract.
type Spec struct {
	Kind         string          `json:"kind"`
	WASM         *WASMSpec       `json:"wasm,omitempty"`
	Train        *trainspec.Spec `json:"train,omitempty"`
	Serve        *ServeSpec      `json:"serve,omitempty"`
	Inputs       []Input         `json:"inputs,omitempty"`
	Outputs      []Output        `json:"outputs,omitempty"`
	Resources    Resources       `json:"resources"`
	Limits       Limits          `json:"limits"`
	Price        *Price          `json:"price,omitempty"`
	Verification *Verification   `json:"verification,omitempty"`
}

// WASMSpec is the wasm section: the module by CID, its arguments and
// environment.
type WASMSpec struct {
	Module string            `json:"module"`
	Args   []string          `json:"args,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
}

// ServeSpec is the serve section: the trained weights to serve, by CID
// (the model output of a train job), and the most examples one forward
// pass takes.
type ServeSpec struct {
	Model    string `json:"model"`
	MaxBatch int    `json:"max_batch,omitempty"`
	// Service names the deployment that callers call; replicas share it.
	// Empty: the job's ID.
	Service string `json:"service,omitempty"`
}

// serviceName is what a serve job's service may be called.
var serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Bounds of the serve section.
const (
	DefaultServeBatch = 64
	maxServeBatch     = 1024
)

// Input is a dataset mounted read-only at /in/<name>.
type Input struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
}

// Output is a file or folder under /out added as UnixFS when the job ends.
type Output struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// Resources is what the job needs of its provider.
type Resources struct {
	CPU       int     `json:"cpu,omitempty"`
	MemoryMiB int     `json:"memory_mib,omitempty"`
	DiskMiB   int     `json:"disk_mib,omitempty"`
	GPU       *GPUReq `json:"gpu,omitempty"`
}

// GPUReq is the GPU part of Resources.
type GPUReq struct {
	Count                int    `json:"count"`
	MinMemoryMiB         int    `json:"min_memory_mib,omitempty"`
	MinComputeCapability string `json:"min_compute_capability,omitempty"`
}

// Limits bound the job's run.
type Limits struct {
	WallSeconds int `json:"wall_seconds,omitempty"`
}

// Price is the most the requester pays, in base units of a token mint.
type Price struct {
	Max  string `json:"max"`
	Mint string `json:"mint"`
}

// Verification asks for result checks.
type Verification struct {
	Mode string `json:"mode"`
	// Replicas is, with mode replicate, how many independent providers
	// run the job: MinReplicas to MaxReplicas.
	Replicas int `json:"replicas,omitempty"`
	// Rate is, with mode spot, the share of jobs checked: more than 0, at
	// most 1.
	Rate float64 `json:"rate,omitempty"`
}

// Bounds of verification.replicas.
const (
	MinReplicas = 2
	MaxReplicas = 5
)

// Replicas is the number of providers that run the job: 1 unless the
// spec asks for replication.
func (s Spec) Replicas() int {
	if v := s.Verification; v != nil && v.Mode == VerifyReplicate {
		return v.Replicas
	}
	return 1
}

// SpotRate is the share of jobs of this spec that are checked: the
// verification's rate with mode spot, else 0.
func (s Spec) SpotRate() float64 {
	if v := s.Verification; v != nil && v.Mode == VerifySpot {
		return v.Rate
	}
	return 0
}

// Defaults applied to fields left out of a spec.
const (
	DefaultCPU         = 1
	DefaultMemoryMiB   = 256
	DefaultDiskMiB     = 64
	DefaultWallSeconds = 60
	DefaultOutputBytes = 64 << 20
)

// ParseSpec decodes a spec strictly, fills defaults and validates it. Every
// error names the field at fault.
func ParseSpec(data []byte) (Spec, error) {
	if len(data) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("spec is %d bytes, more than %d", len(data), MaxSpecBytes)
	}
	var s Spec
	if err := strictjson.Decode(data, &s); err != nil {
		return Spec{}, err
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	// Escapes and defaults make the spec as announced larger than as written.
	if b, _ := json.Marshal(s); len(b) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("spec is %d bytes once encoded with its defaults, more than %d", len(b), MaxSpecBytes)
	}
	return s, nil
}

// Normalize fills the defaults of fields left out.
func (s *Spec) Normalize() {
	if s.Resources.CPU == 0 {
		s.Resources.CPU = DefaultCPU
	}
	if s.Resources.MemoryMiB == 0 {
		s.Resources.MemoryMiB = DefaultMemoryMiB
	}
	if s.Resources.DiskMiB == 0 {
		s.Resources.DiskMiB = DefaultDiskMiB
	}
	if s.Limits.WallSeconds == 0 {
		s.Limits.WallSeconds = DefaultWallSeconds
	}
	for i := range s.Outputs {
		if s.Outputs[i].MaxBytes == 0 {
			s.Outputs[i].MaxBytes = DefaultOutputBytes
		}
	}
	if s.Verification == nil {
		s.Verification = &Verification{Mode: VerifyNone}
	}
	if s.Serve != nil && s.Serve.MaxBatch == 0 {
		s.Serve.MaxBatch = DefaultServeBatch
	}
	if s.Train != nil {
		s.Train.Normalize()
		if s.Kind == KindTrain {
			s.addTrainOutputs()
		}
	}
}

// Outputs every train job has, added when the spec does not name them.
const (
	OutputModel       = "model"
	OutputMetrics     = "metrics"
	OutputCheckpoints = "checkpoints"
)

// addTrainOutputs declares the trained weights, the metrics stream and
// the checkpoints as outputs, unless the spec declares outputs of those
// names itself.
func (s *Spec) addTrainOutputs() {
	have := map[string]bool{}
	for _, o := range s.Outputs {
		have[o.Name] = true
	}
	for _, o := range []Output{
		{Name: OutputModel, Path: "/out/model.safetensors", MaxBytes: maxOutputBytes},
		{Name: OutputMetrics, Path: "/out/metrics.jsonl", MaxBytes: 256 << 20},
		{Name: OutputCheckpoints, Path: "/out/checkpoints", MaxBytes: maxOutputBytes},
	} {
		if !have[o.Name] {
			s.Outputs = append(s.Outputs, o)
		}
	}
}

var (
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	capabilityRE = regexp.MustCompile(`^[0-9]{1,2}\.[0-9]$`)
)

// Validate reports every problem of a normalized spec, each naming its field.
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch s.Kind {
	case KindWASM:
		if s.WASM == nil {
			bad("wasm", "required for kind wasm")
		}
	case KindTrain:
		if s.Train == nil {
			bad("train", "required for kind train")
		} else {
			if err := s.Train.Validate(checkCID); err != nil {
				errs = append(errs, err)
			}
		}
	case KindServe:
		if s.Serve == nil {
			bad("serve", "required for kind serve")
		}
		if len(s.Outputs) > 0 {
			bad("outputs", "a serve job has none")
		}
	case "":
		bad("kind", "required (wasm, train, serve)")
	default:
		bad("kind", "%q is not a job kind (wasm, train, serve)", s.Kind)
	}
	if v := s.Serve; v != nil {
		if s.Kind != KindServe {
			bad("serve", "only for kind serve")
		}
		if err := checkCID(v.Model); err != nil {
			bad("serve.model", "%v", err)
		}
		if v.MaxBatch < 1 || v.MaxBatch > maxServeBatch {
			bad("serve.max_batch", "%d is outside 1..%d", v.MaxBatch, maxServeBatch)
		}
		if v.Service != "" && !serviceName.MatchString(v.Service) {
			bad("serve.service", "%q is not 1 to 64 letters, digits, dots, dashes and underscores, starting with a letter or digit", v.Service)
		}
	}
	if s.Train != nil && s.Kind != KindTrain {
		bad("train", "only for kind train")
	}
	if s.WASM != nil {
		if s.Kind != KindWASM {
			bad("wasm", "only for kind wasm")
		}
		if err := checkCID(s.WASM.Module); err != nil {
			bad("wasm.module", "%v", err)
		}
		if len(s.WASM.Args) > maxArgs {
			bad("wasm.args", "%d arguments, at most %d", len(s.WASM.Args), maxArgs)
		}
		for i, a := range s.WASM.Args {
			if len(a) > maxArgBytes {
				bad(fmt.Sprintf("wasm.args[%d]", i), "%d bytes, at most %d", len(a), maxArgBytes)
			}
		}
		if len(s.WASM.Env) > maxEnv {
			bad("wasm.env", "%d variables, at most %d", len(s.WASM.Env), maxEnv)
		}
		for k, v := range s.WASM.Env {
			if !envName.MatchString(k) {
				bad("wasm.env."+k, "not a valid variable name")
			}
			if len(v) > maxArgBytes {
				bad("wasm.env."+k, "%d bytes, at most %d", len(v), maxArgBytes)
			}
		}
	}
	if len(s.Inputs) > maxInputs {
		bad("inputs", "%d inputs, at most %d", len(s.Inputs), maxInputs)
	}
	names := map[string]bool{}
	for i, in := range s.Inputs {
		f := fmt.Sprintf("inputs[%d]", i)
		if err := checkName(in.Name); err != nil {
			bad(f+".name", "%v", err)
		} else if names[in.Name] {
			bad(f+".name", "%q is used twice", in.Name)
		}
		names[in.Name] = true
		if s.Kind == KindTrain && in.Name == trainspec.DatasetDir {
			bad(f+".name", "%q is where a train job's dataset goes", in.Name)
		}
		if err := checkCID(in.CID); err != nil {
			bad(f+".cid", "%v", err)
		}
	}
	if len(s.Outputs) > maxOutputs {
		bad("outputs", "%d outputs, at most %d", len(s.Outputs), maxOutputs)
	}
	outNames := map[string]bool{}
	for i, o := range s.Outputs {
		f := fmt.Sprintf("outputs[%d]", i)
		if err := checkName(o.Name); err != nil {
			bad(f+".name", "%v", err)
		} else if outNames[o.Name] {
			bad(f+".name", "%q is used twice", o.Name)
		}
		outNames[o.Name] = true
		if !strings.HasPrefix(o.Path, "/out/") || path.Clean(o.Path) != o.Path {
			bad(f+".path", "%q must be a clean path under /out/", o.Path)
		}
		if o.MaxBytes < 1 || o.MaxBytes > maxOutputBytes {
			bad(f+".max_bytes", "%d is outside 1..%d", o.MaxBytes, int64(maxOutputBytes))
		}
	}
	r := s.Resources
	if r.CPU < 1 || r.CPU > 256 {
		bad("resources.cpu", "%d is outside 1..256", r.CPU)
	}
	maxMem := 1 << 20
	if s.Kind == KindWASM {
		maxMem = maxWASMMemory
	}
	if r.MemoryMiB < 16 || r.MemoryMiB > maxMem {
		bad("resources.memory_mib", "%d is outside 16..%d", r.MemoryMiB, maxMem)
	} else if s.Kind == KindTrain {
		s.checkMemory(bad)
	}
	if r.DiskMiB < 1 || r.DiskMiB > 1<<20 {
		bad("resources.disk_mib", "%d is outside 1..%d", r.DiskMiB, 1<<20)
	}
	if g := r.GPU; g != nil {
		if g.Count < 1 || g.Count > 16 {
			bad("resources.gpu.count", "%d is outside 1..16", g.Count)
		}
		if g.MinMemoryMiB < 0 {
			bad("resources.gpu.min_memory_mib", "%d is negative", g.MinMemoryMiB)
		}
		if g.MinComputeCapability != "" && !capabilityRE.MatchString(g.MinComputeCapability) {
			bad("resources.gpu.min_compute_capability", "%q is not of the form 8.0", g.MinComputeCapability)
		}
		if s.Kind == KindWASM || s.Kind == KindServe {
			bad("resources.gpu", "%s jobs cannot use GPUs", s.Kind)
		}
	}
	if w := s.Limits.WallSeconds; w < 1 || w > maxWallSeconds {
		bad("limits.wall_seconds", "%d is outside 1..%d", w, maxWallSeconds)
	}
	if p := s.Price; p != nil {
		if _, err := ParseAmount(p.Max); err != nil {
			bad("price.max", "%v", err)
		}
		if err := CheckMint(p.Mint); err != nil {
			bad("price.mint", "%v", err)
		}
	}
	if v := s.Verification; v != nil {
		switch v.Mode {
		case VerifyNone, VerifyReplicate, VerifySpot:
		default:
			bad("verification.mode", "%q is not one of none, replicate, spot", v.Mode)
		}
		switch {
		case v.Mode == VerifyReplicate && (v.Replicas < MinReplicas || v.Replicas > MaxReplicas):
			bad("verification.replicas", "%d is outside %d..%d", v.Replicas, MinReplicas, MaxReplicas)
		case v.Mode != VerifyReplicate && v.Replicas != 0:
			bad("verification.replicas", "only with mode replicate")
		}
		switch {
		case v.Mode == VerifySpot && !(v.Rate > 0 && v.Rate <= 1):
			bad("verification.rate", "%g is outside (0, 1]: more than 0, at most 1", v.Rate)
		case v.Mode != VerifySpot && v.Rate != 0:
			bad("verification.rate", "only with mode spot")
		}
		if v.Mode != VerifyNone && s.Kind == KindServe {
			bad("verification.mode", "%s is for wasm and train jobs, not serve jobs", v.Mode)
		}
	}
	return errors.Join(errs...)
}

// Content is one piece of content a job reads, with the spec field that
// names it.
type Content struct {
	Field string
	CID   string
}

// Contents returns every piece of content the job reads: the module or
// dataset, and the inputs.
func (s Spec) Contents() []Content {
	var out []Content
	if s.WASM != nil {
		out = append(out, Content{"wasm.module", s.WASM.Module})
	}
	if s.Train != nil {
		out = append(out, Content{"train.dataset", s.Train.Dataset.CID})
	}
	if s.Serve != nil {
		out = append(out, Content{"serve.model", s.Serve.Model})
	}
	for _, in := range s.Inputs {
		out = append(out, Content{"input " + in.Name, in.CID})
	}
	return out
}

// Section returns the settings of the job's kind, its wasm, train or
// serve section, as JSON: what its executor reads.
func (s Spec) Section() (json.RawMessage, error) {
	switch {
	case s.Kind == KindWASM && s.WASM != nil:
		return json.Marshal(s.WASM)
	case s.Kind == KindTrain && s.Train != nil:
		return json.Marshal(s.Train)
	case s.Kind == KindServe && s.Serve != nil:
		return json.Marshal(s.Serve)
	}
	return nil, fmt.Errorf("a %q job has no section of its kind", s.Kind)
}

// KeptOnFailure names the outputs a provider still reports when the job
// fails: a train job's metrics so far.
func (s Spec) KeptOnFailure() []string {
	if s.Kind == KindTrain {
		return []string{OutputMetrics}
	}
	return nil
}

// MaxPrice returns the price cap, 0 when the spec sets none.
func (s Spec) MaxPrice() uint64 {
	if s.Price == nil {
		return 0
	}
	n, _ := ParseAmount(s.Price.Max)
	return n
}

func checkCID(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if _, err := cid.Decode(s); err != nil {
		return fmt.Errorf("%q is not a CID: %v", s, err)
	}
	return nil
}

func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("required")
	case n == "." || n == "..", strings.ContainsAny(n, "/\\\x00"):
		return fmt.Errorf("%q is not a plain file name", n)
	case len(n) > 255:
		return fmt.Errorf("longer than 255 bytes")
	}
	return nil
}

// CheckMint checks that m is a base58 account address (32 bytes).
func CheckMint(m string) error {
	if m == "" {
		return errors.New("required")
	}
	b, err := base58.Decode(m)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%q is not a base58 account address", m)
	}
	return nil
}

// ParseAmount parses a token amount in base units (a decimal uint64).
func ParseAmount(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("required")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number of base units", s)
	}
	return n, nil
}

// OutputLimit is the max_bytes of the output named name, 0 when the spec
// has no such output.
func (s Spec) OutputLimit(name string) int64 {
	for _, o := range s.Outputs {
		if o.Name == name {
			return o.MaxBytes
		}
	}
	return 0
}

// OutputBlockLimit is the most an output of maxBytes may take as blocks:
// its file data (at most maxBytes), and the nodes of its files and of the
// folders that hold them, allowed 1/64 more and 64 KiB. A provider
// refuses an output past it, and a requester stops fetching one there, so
// that both sides draw the same line.
func OutputBlockLimit(maxBytes int64) int64 {
	return maxBytes + maxBytes/64 + 64<<10
}
