package indexdb

import (
	"encoding/json"
	"time"
)

// GPU is a GPU of a provider as its capacity record claims it.
type GPU struct {
	Model     string `json:"model"`
	MemoryMiB int    `json:"memory_mib"`
}

// Capacity is one signed capacity record as an indexer saw it.
type Capacity struct {
	Peer              string    `json:"peer"`
	Seq               uint64    `json:"seq"`
	IssuedAt          time.Time `json:"issued_at"`
	ExpiresAt         time.Time `json:"expires_at"`
	SeenAt            time.Time `json:"seen_at"`
	CPUCores          int       `json:"cpu_cores"`
	MemoryMiB         int64     `json:"memory_mib"`
	DiskMiB           int64     `json:"disk_mib"`
	GPUs              []GPU     `json:"gpus,omitempty"`
	Executors         []string  `json:"executors,omitempty"`
	PricePerCPUSecond uint64    `json:"price_per_cpu_second"`
	PriceMinimum      uint64    `json:"price_minimum"`
	Mint              string    `json:"mint"`
	BenchScore        float64   `json:"bench_score"`
	// Record is the signed envelope as received, kept as evidence.
	Record []byte `json:"record,omitempty"`
}

// Announcement is one job announcement (one attempt of a job).
type Announcement struct {
	JobID       string    `json:"job_id"`
	Attempt     int       `json:"attempt"`
	Requester   string    `json:"requester"`
	Kind        string    `json:"kind"`
	CPU         int       `json:"cpu"`
	MemoryMiB   int64     `json:"memory_mib"`
	GPUs        int       `json:"gpus"`
	WallSeconds int       `json:"wall_seconds"`
	MaxPrice    uint64    `json:"max_price"`
	Mint        string    `json:"mint"`
	IssuedAt    time.Time `json:"issued_at"`
	SeenAt      time.Time `json:"seen_at"`
	Record      []byte    `json:"record,omitempty"`
}

// Receipt is one signed job receipt: the requester signs, the provider
// countersigns.
type Receipt struct {
	// ID is the hex SHA-256 of Record; the primary key.
	ID        string `json:"id"`
	JobID     string `json:"job_id"`
	Attempt   int    `json:"attempt"`
	Requester string `json:"requester"`
	Provider  string `json:"provider"`
	Kind      string `json:"kind"`
	// Outcome is "succeeded", "failed", "cancelled", "mismatch", ...
	Outcome string `json:"outcome"`
	// Fault says whose fault a failure was: "provider", "requester", "none".
	Fault  string `json:"fault"`
	Reason string `json:"reason"`
	Price  uint64 `json:"price"`
	Mint   string `json:"mint"`
	// EscrowState is "", "released", "refunded", "disputed", ...
	EscrowState string `json:"escrow_state"`
	// EscrowTx is the ledger transaction a paid receipt names.
	EscrowTx string `json:"escrow_tx"`
	// Outputs are the CIDs of the job's outputs, if the receipt names them.
	Outputs       []string  `json:"outputs,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	EndedAt       time.Time `json:"ended_at"`
	IssuedAt      time.Time `json:"issued_at"`
	SeenAt        time.Time `json:"seen_at"`
	Countersigned bool      `json:"countersigned"`
	Record        []byte    `json:"record,omitempty"`
}

// The states of an EscrowCheck.
const (
	CheckConfirmed = "confirmed"
	CheckMissing   = "missing"
	CheckMismatch  = "mismatch"
	CheckError     = "error"
)

// EscrowCheck is the ledger's word on a receipt's escrow transaction.
type EscrowCheck struct {
	ReceiptID string `json:"receipt_id"`
	// State is one of CheckConfirmed, CheckMissing, CheckMismatch,
	// CheckError.
	State     string    `json:"state"`
	Detail    string    `json:"detail"`
	CheckedAt time.Time `json:"checked_at"`
}

// Model is a signed model record of the registry.
type Model struct {
	// ID is the hex SHA-256 of Record.
	ID          string `json:"id"`
	Publisher   string `json:"publisher"`
	Name        string `json:"name"`
	Description string `json:"description"`
	License     string `json:"license"`
	WeightsCID  string `json:"weights_cid"`
	// Spec is the train spec the model was trained with.
	Spec        json.RawMessage    `json:"spec,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	JobID       string             `json:"job_id"`
	ReceiptID   string             `json:"receipt_id"`
	PublishedAt time.Time          `json:"published_at"`
	SeenAt      time.Time          `json:"seen_at"`
	Record      []byte             `json:"record,omitempty"`
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the opaque cursor of the next page, "" at the end.
	Next string `json:"next"`
}

// ProviderQuery selects a page of providers, in the order of their peer IDs.
type ProviderQuery struct {
	// Limit is the page size: 0 means DefaultPageSize, at most MaxPageSize.
	Limit int `json:"limit"`
	// Cursor is the Next of the previous page, "" for the first.
	Cursor string `json:"cursor"`
	// GPUModel, if set, keeps the providers whose latest record has a GPU
	// whose model contains it (case-insensitively).
	GPUModel string `json:"gpu_model"`
	// Executor, if set, keeps the providers whose latest record names it.
	Executor string `json:"executor"`
	// SeenSince, if set, keeps the providers with a record seen since.
	SeenSince time.Time `json:"seen_since"`
}

// ProviderSummary is what the indexer knows of one provider.
type ProviderSummary struct {
	Peer      string    `json:"peer"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Records counts its capacity records.
	Records int `json:"records"`
	// Latest is its record of the highest Seq, without Record.
	Latest Capacity `json:"latest"`
	// Jobs counts the receipts that name it as provider; Succeeded,
	// FailedByProvider (not succeeded, fault "provider", not a mismatch) and
	// Mismatches count those of each kind.
	Jobs             int `json:"jobs"`
	Succeeded        int `json:"succeeded"`
	FailedByProvider int `json:"failed_by_provider"`
	Mismatches       int `json:"mismatches"`
	// SuccessRate is Succeeded / (Succeeded + FailedByProvider +
	// Mismatches), 0 when that is 0.
	SuccessRate float64 `json:"success_rate"`
	// Uptime is the share of [FirstSeen, now] that the union of its
	// records' [IssuedAt, ExpiresAt] covers, between 0 and 1.
	Uptime float64 `json:"uptime"`
}

// ProviderDetail is a provider with its recent history.
type ProviderDetail struct {
	ProviderSummary
	// History is its capacity records, newest (highest Seq) first, at most
	// 100, without Record.
	History []Capacity `json:"history"`
	// Receipts are the receipts that name it, newest first, at most 100.
	Receipts []Receipt `json:"receipts"`
}

// JobQuery selects a page of jobs, newest (by FirstSeen) first.
type JobQuery struct {
	Limit  int    `json:"limit"`
	Cursor string `json:"cursor"`
	// Requester and Kind, if set, keep the jobs of that requester or kind.
	Requester string `json:"requester"`
	Kind      string `json:"kind"`
	// Provider and Outcome, if set, keep the jobs whose latest receipt
	// names that provider or outcome.
	Provider string `json:"provider"`
	Outcome  string `json:"outcome"`
	// Since, if set, keeps the jobs first seen since.
	Since time.Time `json:"since"`
}

// JobSummary is one job: its announcements and receipts in a line.
type JobSummary struct {
	JobID     string `json:"job_id"`
	Requester string `json:"requester"`
	Kind      string `json:"kind"`
	// Attempts is the highest attempt number seen in its announcements
	// and receipts.
	Attempts int `json:"attempts"`
	// FirstSeen is when the indexer stored the job's first row.
	FirstSeen time.Time `json:"first_seen"`
	// Outcome, Provider, Price and EscrowState are those of its latest
	// receipt (highest attempt, then latest IssuedAt), "" / 0 if none.
	Outcome     string `json:"outcome"`
	Provider    string `json:"provider"`
	Price       uint64 `json:"price"`
	EscrowState string `json:"escrow_state"`
	// EscrowCheck is the state of the latest check of that receipt's
	// escrow, "" if none.
	EscrowCheck string `json:"escrow_check"`
}

// JobDetail is a job with everything the indexer holds of it.
type JobDetail struct {
	JobSummary
	// Announcements in order of attempt.
	Announcements []Announcement `json:"announcements"`
	// Receipts in order of attempt, then IssuedAt.
	Receipts []Receipt `json:"receipts"`
	// Checks of its receipts' escrows, oldest first.
	Checks []EscrowCheck `json:"checks"`
}

// The resources a price series can follow.
const (
	ResourceCPUSecond = "cpu_second"
	ResourceMinimum   = "minimum"
)

// SeriesQuery selects a time series: buckets of Bucket from From (the first
// starts at From) up to To.
type SeriesQuery struct {
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Bucket time.Duration `json:"bucket"`
	// Resource is the price a price series follows: ResourceCPUSecond (the
	// default when empty) or ResourceMinimum.
	Resource string `json:"resource"`
}

// PricePoint is one bucket of a price series: over the latest record (the
// highest Seq) of each provider with a record seen in the bucket.
type PricePoint struct {
	Time time.Time `json:"time"`
	Min  uint64    `json:"min"`
	// Median is the lower median: the value at index (n-1)/2 of the
	// sorted prices. It is exact.
	Median    uint64 `json:"median"`
	Max       uint64 `json:"max"`
	Providers int    `json:"providers"`
}

// SizePoint is one bucket of the swarm's size.
type SizePoint struct {
	Time time.Time `json:"time"`
	// Providers counts the distinct providers with a record seen in the
	// bucket.
	Providers int `json:"providers"`
	// Jobs counts the announcements seen in the bucket.
	Jobs int `json:"jobs"`
}

// ModelQuery selects a page of models, newest (by PublishedAt) first.
type ModelQuery struct {
	Limit  int    `json:"limit"`
	Cursor string `json:"cursor"`
	// Text, if set, keeps the models whose name or description contains it
	// (case-insensitively).
	Text string `json:"text"`
	// Publisher, if set, keeps the models of that publisher.
	Publisher string `json:"publisher"`
}

// Stats counts the rows of each table.
type Stats struct {
	Capacity      int64 `json:"capacity"`
	Announcements int64 `json:"announcements"`
	Receipts      int64 `json:"receipts"`
	Models        int64 `json:"models"`
	EscrowChecks  int64 `json:"escrow_checks"`
}
