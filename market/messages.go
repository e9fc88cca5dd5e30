package market

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/settlement"
)

// GPU describes one GPU of a provider.
type GPU struct {
	Model             string `json:"model"`
	MemoryMiB         int    `json:"memory_mib"`
	ComputeCapability string `json:"compute_capability"`
	// Driver and CUDA are the driver's version and the CUDA version it
	// supports.
	Driver string `json:"driver,omitempty"`
	CUDA   string `json:"cuda,omitempty"`
}

// Capacity is a provider's signed offer, kept in the DHT and refreshed
// before it expires.
type Capacity struct {
	Peer       string    `json:"peer"`
	CPUCores   int       `json:"cpu_cores"`
	MemoryMiB  int64     `json:"memory_mib"`
	DiskMiB    int64     `json:"disk_mib"`
	GPUs       []GPU     `json:"gpus,omitempty"`
	Executors  []string  `json:"executors"`
	Prices     PriceList `json:"prices"`
	Relay      bool      `json:"relay"`
	BenchScore float64   `json:"bench_score"`
	Seq        uint64    `json:"seq"`
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// PriceList is what a provider charges, in base units of Mint.
type PriceList struct {
	// PerCPUSecond is charged per CPU per second of the job's wall limit.
	PerCPUSecond uint64 `json:"per_cpu_second"`
	// Minimum is the least the provider takes for any job.
	Minimum uint64 `json:"minimum"`
	Mint    string `json:"mint,omitempty"`
}

// Quote is the provider's price for a spec.
func (p PriceList) Quote(s Spec) uint64 {
	return max(p.Minimum, p.PerCPUSecond*uint64(s.Resources.CPU)*uint64(s.Limits.WallSeconds))
}

// CheckCapacity checks a capacity record against its signer and the clock.
func CheckCapacity(c Capacity, signer peer.ID, now time.Time) error {
	if c.Peer != signer.String() {
		return fmt.Errorf("capacity record for %s signed by %s", c.Peer, signer)
	}
	if !c.ExpiresAt.After(now) {
		return errors.New("capacity record has expired")
	}
	if c.IssuedAt.After(now.Add(time.Minute)) {
		return errors.New("capacity record is issued in the future")
	}
	if c.ExpiresAt.Sub(c.IssuedAt) > 24*time.Hour {
		return errors.New("capacity record lives longer than a day")
	}
	if c.CPUCores < 1 || c.MemoryMiB < 1 || len(c.Executors) == 0 {
		return errors.New("capacity record offers nothing")
	}
	if len(c.GPUs) > maxCapacityGPUs || len(c.Executors) > maxExecutors {
		return fmt.Errorf("capacity record lists %d GPUs and %d executors, at most %d and %d",
			len(c.GPUs), len(c.Executors), maxCapacityGPUs, maxExecutors)
	}
	fields := append([]string{c.Prices.Mint}, c.Executors...)
	for _, g := range c.GPUs {
		fields = append(fields, g.Model, g.ComputeCapability, g.Driver, g.CUDA)
	}
	return checkFields("capacity record", fields...)
}

// Announcement is a job offered to the swarm on the jobs topic.
type Announcement struct {
	JobID     string `json:"job_id"`
	Requester string `json:"requester"`
	// RequesterAddrs is where providers send their bids.
	RequesterAddrs []string  `json:"requester_addrs"`
	Attempt        int       `json:"attempt"`
	Spec           Spec      `json:"spec"`
	IssuedAt       time.Time `json:"issued_at"`
	// BidsUntil closes the auction: bids after it are ignored.
	BidsUntil time.Time `json:"bids_until"`
}

// Freshness bounds: an announcement older than this, or dated this far in
// the future, is dropped.
const (
	MaxAnnouncementAge  = 2 * time.Minute
	MaxClockSkew        = 30 * time.Second
	MaxBidWindow        = time.Minute
	jobIDLen            = 26
	maxProviderQueue    = 1024
	maxBidTTL           = 10 * time.Minute
	maxResultOutputs    = 64
	maxLogTailBytes     = 8 << 10
	maxResultMetrics    = 32
	maxPayoutBytes      = 4096
	maxFailureReasonLen = 1024
	maxAttempt          = 100000
	// MaxRequesterAddrs bounds the addresses an announcement may carry.
	MaxRequesterAddrs = 64
	maxCapacityGPUs   = 64
	maxExecutors      = 16
	// maxFieldBytes bounds each free-form string of a message that has no
	// tighter bound: addresses, CIDs, accounts, names.
	maxFieldBytes = 1024
)

// checkFields refuses a message (named by what) with a field longer than
// maxFieldBytes.
func checkFields(what string, fields ...string) error {
	for _, f := range fields {
		if len(f) > maxFieldBytes {
			return fmt.Errorf("%s has a field of %d bytes, at most %d", what, len(f), maxFieldBytes)
		}
	}
	return nil
}

// CheckAnnouncement validates an announcement against its signer and clock.
func CheckAnnouncement(a Announcement, signer peer.ID, now time.Time) error {
	if a.Requester != signer.String() {
		return fmt.Errorf("announcement by %s signed by %s", a.Requester, signer)
	}
	if err := CheckJobID(a.JobID); err != nil {
		return err
	}
	if a.Attempt < 1 || a.Attempt > maxAttempt {
		return fmt.Errorf("attempt %d is outside 1..%d", a.Attempt, maxAttempt)
	}
	if now.Sub(a.IssuedAt) > MaxAnnouncementAge {
		return errors.New("announcement is stale")
	}
	if a.IssuedAt.After(now.Add(MaxClockSkew)) {
		return errors.New("announcement is dated in the future")
	}
	if a.BidsUntil.Before(a.IssuedAt) || a.BidsUntil.Sub(a.IssuedAt) > MaxBidWindow {
		return errors.New("bid window is out of range")
	}
	if len(a.RequesterAddrs) > MaxRequesterAddrs {
		return fmt.Errorf("%d requester addresses, at most %d", len(a.RequesterAddrs), MaxRequesterAddrs)
	}
	if err := checkFields("announcement", a.RequesterAddrs...); err != nil {
		return err
	}
	if err := a.Spec.Validate(); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

// CheckJobID checks the form of a job ID (26 characters of Crockford base32).
func CheckJobID(id string) error {
	if len(id) != jobIDLen {
		return fmt.Errorf("job id %q is not %d characters", id, jobIDLen)
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("job id %q has a character outside 0-9A-Z", id)
		}
	}
	return nil
}

// Bid is a provider's offer for one announced job.
type Bid struct {
	JobID      string    `json:"job_id"`
	Attempt    int       `json:"attempt"`
	Provider   string    `json:"provider"`
	Price      uint64    `json:"price"`
	Mint       string    `json:"mint,omitempty"`
	QueueDepth int       `json:"queue_depth"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Payee is the provider's ledger account, where a priced job's escrow
	// pays out; "" when the provider settles no payments.
	Payee string `json:"payee,omitempty"`
}

// CheckBid validates a bid for the announcement a, received from signer.
func CheckBid(b Bid, signer peer.ID, a Announcement, now time.Time) error {
	switch {
	case b.Provider != signer.String():
		return fmt.Errorf("bid for %s signed by %s", b.Provider, signer)
	case b.JobID != a.JobID || b.Attempt != a.Attempt:
		return fmt.Errorf("bid for job %s attempt %d, not %s attempt %d", b.JobID, b.Attempt, a.JobID, a.Attempt)
	case !b.ExpiresAt.After(now):
		return errors.New("bid has expired")
	case b.ExpiresAt.Sub(now) > maxBidTTL:
		return errors.New("bid lives too long")
	case b.QueueDepth < 0 || b.QueueDepth > maxProviderQueue:
		return fmt.Errorf("queue depth %d is out of range", b.QueueDepth)
	}
	if max := a.Spec.MaxPrice(); a.Spec.Price != nil && b.Price > max {
		return fmt.Errorf("bid price %d is above the job's maximum %d", b.Price, max)
	}
	if a.Spec.Price != nil && b.Mint != a.Spec.Price.Mint {
		return fmt.Errorf("bid in mint %q, the job pays in %q", b.Mint, a.Spec.Price.Mint)
	}
	return checkFields("bid", b.Mint, b.Payee)
}

// Award gives a job to one bidder. The provider acks before it starts.
type Award struct {
	JobID     string    `json:"job_id"`
	Attempt   int       `json:"attempt"`
	Requester string    `json:"requester"`
	Provider  string    `json:"provider"`
	Price     uint64    `json:"price"`
	Spec      Spec      `json:"spec"`
	IssuedAt  time.Time `json:"issued_at"`
	// Deadline is when the result must be in: execution limit plus margins.
	Deadline time.Time `json:"deadline"`
	// Escrow is where the requester locked the price, for priced jobs
	// settled on a ledger.
	Escrow *EscrowTerms `json:"escrow,omitempty"`
}

// EscrowTerms describe the escrow of one award: the terms the three
// parties' 2-of-3 vault holds, and where it is.
type EscrowTerms struct {
	settlement.Terms
	settlement.Ref
	// ArbiterPeer is the arbiter node that co-signs refunds and disputes.
	ArbiterPeer string `json:"arbiter_peer"`
}

// Check validates escrow terms for an award of price in mint.
func (t EscrowTerms) Check(price uint64, mint string) error {
	switch {
	case t.JobID == "" || t.Requester == "" || t.Provider == "" || t.Arbiter == "" || t.Multisig == "" || t.Vault == "":
		return errors.New("escrow: incomplete terms")
	case len(t.JobID)+len(t.Requester)+len(t.Provider)+len(t.Arbiter)+len(t.ArbiterPeer)+len(t.Mint)+len(t.Multisig)+len(t.Vault) > 1024:
		return errors.New("escrow: terms too long")
	case t.Amount != price:
		return fmt.Errorf("escrow: holds %d, the award's price is %d", t.Amount, price)
	case t.Mint != mint:
		return fmt.Errorf("escrow: in mint %s, the price is in %s", t.Mint, mint)
	}
	return nil
}

// CheckAward validates an award received by provider self from signer.
func CheckAward(w Award, signer, self peer.ID, now time.Time) error {
	switch {
	case w.Requester != signer.String():
		return fmt.Errorf("award by %s signed by %s", w.Requester, signer)
	case w.Provider != self.String():
		return fmt.Errorf("award for %s, not this provider", w.Provider)
	case now.Sub(w.IssuedAt) > MaxAnnouncementAge || w.IssuedAt.After(now.Add(MaxClockSkew)):
		return errors.New("award is stale or dated in the future")
	case !w.Deadline.After(now):
		return errors.New("award deadline has passed")
	}
	if err := CheckJobID(w.JobID); err != nil {
		return err
	}
	if w.Escrow != nil {
		if w.Spec.Price == nil {
			return errors.New("escrow for a job with no price")
		}
		if err := w.Escrow.Check(w.Price, w.Spec.Price.Mint); err != nil {
			return err
		}
		if w.Escrow.Deadline.Before(w.Deadline) {
			return errors.New("escrow: its deadline is before the award's")
		}
	}
	return w.Spec.Validate()
}

// Cancel asks the provider to stop a job.
type Cancel struct {
	JobID     string `json:"job_id"`
	Attempt   int    `json:"attempt"`
	Requester string `json:"requester"`
	Reason    string `json:"reason,omitempty"`
}

// Ack is the provider's answer to an award.
type Ack struct {
	JobID    string `json:"job_id"`
	Attempt  int    `json:"attempt"`
	Provider string `json:"provider"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
	// Vault is, for an accepted award with an escrow, the vault the
	// provider checked on the ledger: a receipt that carries the ack
	// proves the provider took that escrow's job.
	Vault string `json:"vault,omitempty"`
}

// Result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// OutputRef is one output of a finished job.
type OutputRef struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

// Usage is what a job consumed.
type Usage struct {
	WallMillis    int64 `json:"wall_ms"`
	InputBytes    int64 `json:"input_bytes"`
	OutputBytes   int64 `json:"output_bytes"`
	CompileMillis int64 `json:"compile_ms"`
}

// Result is the provider's signed report of a finished job.
type Result struct {
	JobID    string      `json:"job_id"`
	Attempt  int         `json:"attempt"`
	Provider string      `json:"provider"`
	Status   string      `json:"status"`
	ExitCode int         `json:"exit_code"`
	Reason   string      `json:"reason,omitempty"`
	Outputs  []OutputRef `json:"outputs,omitempty"`
	LogCID   string      `json:"log_cid,omitempty"`
	LogTail  string      `json:"log_tail,omitempty"`
	// Metrics, MetricsCID and ModelCID report a train job: its final
	// figures, its metrics stream and its trained weights.
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	MetricsCID string             `json:"metrics_cid,omitempty"`
	ModelCID   string             `json:"model_cid,omitempty"`
	// Payout is the provider's partly signed release of the escrow (or a
	// split: PayoutKind), which the requester co-signs once it accepts
	// the result.
	Payout []byte `json:"payout,omitempty"`
	// PayoutKind is "split" when Payout is a split rather than a release
	// (a serve job its requester stopped early: its hosting is paid for
	// the time served); "" for a release. PayoutAmount is what the split
	// pays the provider, the rest of the vault going back to the requester.
	PayoutKind   string    `json:"payout_kind,omitempty"`
	PayoutAmount uint64    `json:"payout_amount,omitempty"`
	Usage        Usage     `json:"usage"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
}

// PayoutSplit is the Result.PayoutKind of a split payout.
const PayoutSplit = "split"

// AddOutput adds an output of a job of the given kind to the result; a
// train job's model and metrics are also named on their own.
func (r *Result) AddOutput(kind string, o OutputRef) {
	r.Outputs = append(r.Outputs, o)
	r.Usage.OutputBytes += o.Size
	if kind != KindTrain {
		return
	}
	switch o.Name {
	case OutputModel:
		r.ModelCID = o.CID
	case OutputMetrics:
		r.MetricsCID = o.CID
	}
}

// CheckResult validates a result for the award w, received from signer.
func CheckResult(r Result, signer peer.ID, w Award) error {
	switch {
	case r.Provider != signer.String():
		return fmt.Errorf("result by %s signed by %s", r.Provider, signer)
	case r.Provider != w.Provider:
		return fmt.Errorf("result from %s, the job was awarded to %s", r.Provider, w.Provider)
	case r.JobID != w.JobID || r.Attempt != w.Attempt:
		return fmt.Errorf("result for job %s attempt %d, not %s attempt %d", r.JobID, r.Attempt, w.JobID, w.Attempt)
	case r.Status != StatusSucceeded && r.Status != StatusFailed:
		return fmt.Errorf("result status %q is not succeeded or failed", r.Status)
	case len(r.Outputs) > maxResultOutputs:
		return fmt.Errorf("%d outputs, at most %d", len(r.Outputs), maxResultOutputs)
	case len(r.Payout) > maxPayoutBytes:
		return fmt.Errorf("payout of %d bytes, at most %d", len(r.Payout), maxPayoutBytes)
	case r.PayoutKind != "" && r.PayoutKind != PayoutSplit:
		return fmt.Errorf("payout kind %q is not %q", r.PayoutKind, PayoutSplit)
	case r.PayoutKind == PayoutSplit && (len(r.Payout) == 0 || r.PayoutAmount == 0):
		return errors.New("a split payout without its transaction or amount")
	case r.PayoutKind == "" && r.PayoutAmount != 0:
		return errors.New("a payout amount without a split")
	case len(r.Metrics) > maxResultMetrics:
		return fmt.Errorf("%d metrics, at most %d", len(r.Metrics), maxResultMetrics)
	case len(r.LogTail) > maxLogTailBytes:
		return fmt.Errorf("log tail of %d bytes, at most %d", len(r.LogTail), maxLogTailBytes)
	case len(r.Reason) > maxFailureReasonLen:
		return errors.New("failure reason too long")
	case r.FinishedAt.Before(r.StartedAt):
		return errors.New("result finished before it started")
	}
	fields := []string{r.LogCID, r.MetricsCID, r.ModelCID}
	for name := range r.Metrics {
		fields = append(fields, name)
	}
	named := map[string]bool{}
	for _, o := range r.Outputs {
		if named[o.Name] {
			return fmt.Errorf("result has output %q twice", o.Name)
		}
		named[o.Name] = true
		fields = append(fields, o.Name, o.CID)
	}
	if err := checkFields("result", fields...); err != nil {
		return err
	}
	if r.Status == StatusSucceeded {
		want := map[string]bool{}
		for _, o := range w.Spec.Outputs {
			want[o.Name] = true
		}
		for _, o := range r.Outputs {
			if !want[o.Name] {
				return fmt.Errorf("result has output %q, which the spec does not name", o.Name)
			}
			if err := checkCID(o.CID); err != nil {
				return fmt.Errorf("output %s: %w", o.Name, err)
			}
		}
	}
	return nil
}
