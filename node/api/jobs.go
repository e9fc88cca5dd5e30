package api

import (
	"context"
	"encoding/json"
	"time"
)

// Job method names.
const (
	MethodJobSubmit = "job.submit"
	MethodJobStatus = "job.status"
	MethodJobList   = "job.list"
	MethodJobCancel = "job.cancel"
	MethodJobLogs   = "job.logs"
	MethodJobResult = "job.result"
	// MethodJobSubscribe opens a subscription to a job's JobEvent and
	// JobLog notifications.
	MethodJobSubscribe = "job.subscribe"
)

// JobSubmitParams are the parameters of job.submit.
type JobSubmitParams struct {
	// Spec is the job spec (see the job spec reference); CIDs only.
	Spec json.RawMessage `json:"spec"`
}

// JobIDParams name one job.
type JobIDParams struct {
	ID string `json:"id"`
}

// JobEventInfo is one step of a job's history.
type JobEventInfo struct {
	Time   time.Time `json:"time"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
}

// JobOutput is one output of a finished job.
type JobOutput struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Size int64  `json:"size"`
}

// JobResultInfo is the provider's signed result, as verified by this node.
type JobResultInfo struct {
	Status   string      `json:"status"`
	ExitCode int         `json:"exit_code"`
	Reason   string      `json:"reason,omitempty"`
	Outputs  []JobOutput `json:"outputs"`
	LogCID   string      `json:"log_cid,omitempty"`
	LogTail  string      `json:"log_tail,omitempty"`
	// Metrics, MetricsCID and ModelCID report a train job: its final
	// figures (loss, accuracy, eval_loss, eval_accuracy, epochs, steps,
	// seconds), its metrics stream (JSON lines) and its trained weights
	// (safetensors).
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	MetricsCID string             `json:"metrics_cid,omitempty"`
	ModelCID   string             `json:"model_cid,omitempty"`
	WallMillis int64              `json:"wall_ms"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at"`
	// Signature is the provider's signed envelope, base64 in JSON.
	Signature []byte `json:"signature,omitempty"`
}

// JobInfo describes one job this node requested.
type JobInfo struct {
	ID       string         `json:"id"`
	State    string         `json:"state"`
	Attempt  int            `json:"attempt"`
	Kind     string         `json:"kind"`
	Provider string         `json:"provider,omitempty"`
	Price    uint64         `json:"price,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Excluded []string       `json:"excluded,omitempty"`
	Result   *JobResultInfo `json:"result,omitempty"`
	// Escrows are the job's payments: one escrow per award of a priced job.
	Escrows []JobEscrow `json:"escrows,omitempty"`
	// Receipts are the job's receipts: one per attempt whose provider
	// acked, signed once the attempt's escrow has settled.
	Receipts []JobReceipt `json:"receipts,omitempty"`
	// Replicas are, for a replicated job (verification mode replicate),
	// its replicas: each run by its own provider, with its own award,
	// escrow and receipts.
	Replicas []JobReplica `json:"replicas,omitempty"`
	// Spot is, for a job whose spec asks for spot checks (verification
	// mode spot), the draw made at submit: checked (it runs on a second
	// provider, and a third on a disagreement) or unchecked (it runs
	// once). Only its requester knows it: its providers get a spec with
	// no verification, as for any job.
	Spot string `json:"spot,omitempty"`
	// Parent is, for a replica, the replicated job it belongs to.
	Parent    string          `json:"parent,omitempty"`
	Events    []JobEventInfo  `json:"events,omitempty"`
	Spec      json.RawMessage `json:"spec,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// JobReplica is one replica of a replicated job. job.status takes its ID
// for the whole of it.
type JobReplica struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Provider string `json:"provider,omitempty"`
	// Verdict is how its result compared with the other replicas': agree,
	// mismatch (not the majority's, or no majority: not paid) or
	// unchecked (the job was cancelled first); absent until the replicas
	// are compared.
	Verdict string `json:"verdict,omitempty"`
	// Result summarizes the replica's result: what is compared.
	Result *JobReplicaResult `json:"result,omitempty"`
	// Escrow is the escrow of its last award, for a priced job.
	Escrow *JobEscrow `json:"escrow,omitempty"`
}

// JobReplicaResult is what replicas' results are compared on.
type JobReplicaResult struct {
	Status   string             `json:"status"`
	ExitCode int                `json:"exit_code"`
	Outputs  []JobOutput        `json:"outputs"`
	ModelCID string             `json:"model_cid,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
}

// JobEscrow is one escrow of a job: the price locked for one award, and
// where it went.
type JobEscrow struct {
	// ID names the escrow on the ledger (job ID and award number).
	ID string `json:"id"`
	// State is locked, released (paid to the provider), refunded (paid
	// back), or failed (nothing was locked); locking while the lock is sent.
	State    string    `json:"state"`
	Provider string    `json:"provider"` // the provider's peer ID
	Amount   uint64    `json:"amount"`
	Mint     string    `json:"mint"`
	Vault    string    `json:"vault,omitempty"`
	Deadline time.Time `json:"deadline"`
	// Tx is the transaction that settled the escrow.
	Tx string `json:"tx,omitempty"`
	// Paid is, for an escrow released by a split (a serve job stopped
	// early by its requester, paid for the time served), what the provider
	// got; the rest of Amount went back to the requester. Absent when the
	// whole amount was released.
	Paid uint64 `json:"paid,omitempty"`
	// Error is the last settlement failure; it is retried.
	Error string `json:"error,omitempty"`
}

// JobReceipt is how one attempt of a job ended, and its signed receipt.
type JobReceipt struct {
	Attempt  int    `json:"attempt"`
	Provider string `json:"provider"`
	// Outcome is succeeded, failed or cancelled; Fault says whose fault a
	// failure was: provider or requester (the job itself, or a cancel).
	Outcome string `json:"outcome"`
	Fault   string `json:"fault"`
	Reason  string `json:"reason,omitempty"`
	Price   uint64 `json:"price"`
	// ID names the signed receipt; "" until it is signed.
	ID string `json:"id,omitempty"`
	// Countersigned: the provider signed it too. Refusal says why it did
	// not, when it refused or could not be reached.
	Countersigned bool   `json:"countersigned"`
	Refusal       string `json:"refusal,omitempty"`
	Published     bool   `json:"published"`
	// Signed is the signed receipt (job.status only), as the receipts
	// topic carries it.
	Signed json.RawMessage `json:"signed,omitempty"`
}

// JobLogsParams are the parameters of job.logs.
type JobLogsParams struct {
	ID     string `json:"id"`
	Offset int64  `json:"offset,omitempty"`
}

// JobLogsResult is a piece of a job's log.
type JobLogsResult struct {
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
	// Next is the offset to ask for next.
	Next int64 `json:"next"`
	// Final is true when the job has ended: no more output will come.
	Final bool `json:"final"`
}

// JobResultParams are the parameters of job.result.
type JobResultParams struct {
	ID string `json:"id"`
	// Output, when set, is an absolute folder on the daemon's machine that
	// receives each output as Output/<name>.
	Output string `json:"output,omitempty"`
}

// JobNotification is a notification of job.subscribe: an event or a piece
// of output.
type JobNotification struct {
	// Type is "event" or "log".
	Type   string    `json:"type"`
	ID     string    `json:"id"`
	State  string    `json:"state,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Stream string    `json:"stream,omitempty"`
	Data   string    `json:"data,omitempty"`
	Time   time.Time `json:"time"`
}

// JobSubmit calls job.submit.
func (c *Client) JobSubmit(ctx context.Context, spec json.RawMessage) (JobInfo, error) {
	var out JobInfo
	err := c.Call(ctx, MethodJobSubmit, JobSubmitParams{Spec: spec}, &out)
	return out, err
}

// JobStatus calls job.status.
func (c *Client) JobStatus(ctx context.Context, id string) (JobInfo, error) {
	var out JobInfo
	err := c.Call(ctx, MethodJobStatus, JobIDParams{ID: id}, &out)
	return out, err
}

// JobList calls job.list.
func (c *Client) JobList(ctx context.Context) ([]JobInfo, error) {
	var out []JobInfo
	err := c.Call(ctx, MethodJobList, nil, &out)
	return out, err
}

// JobCancel calls job.cancel.
func (c *Client) JobCancel(ctx context.Context, id string) (JobInfo, error) {
	var out JobInfo
	err := c.Call(ctx, MethodJobCancel, JobIDParams{ID: id}, &out)
	return out, err
}

// JobLogs calls job.logs.
func (c *Client) JobLogs(ctx context.Context, p JobLogsParams) (JobLogsResult, error) {
	var out JobLogsResult
	err := c.Call(ctx, MethodJobLogs, p, &out)
	return out, err
}

// JobResult calls job.result.
func (c *Client) JobResult(ctx context.Context, p JobResultParams) (JobInfo, error) {
	var out JobInfo
	err := c.Call(ctx, MethodJobResult, p, &out)
	return out, err
}

// SubscribeJob opens a job.subscribe subscription; each notification
// decodes into a JobNotification.
func (c *Client) SubscribeJob(ctx context.Context, id string) (*Subscription, error) {
	return c.Subscribe(ctx, MethodJobSubscribe, JobIDParams{ID: id})
}
