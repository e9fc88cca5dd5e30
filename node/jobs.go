package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/ipfs/go-cid"
)

// maxLogPiece bounds one job.logs answer.
const maxLogPiece = 1 << 20

func jobTopic(id string) string { return "job/" + id }

// jobNotify returns the engine's Notify: it turns engine events into
// notifications on the hub.
func jobNotify(events *hub) func(id string, ev any) {
	return func(id string, ev any) {
		switch ev := ev.(type) {
		case jobs.Event:
			events.publish(jobTopic(id), api.JobNotification{Type: "event", ID: id, State: string(ev.State), Detail: ev.Detail, Time: ev.Time})
		case jobs.LogLine:
			events.publish(jobTopic(id), api.JobNotification{Type: "log", ID: id, Stream: ev.Stream, Data: ev.Data, Time: time.Now().UTC()})
		}
	}
}

// jobAPI serves job.* but job.dispute: the jobs engine, the content
// store that holds the jobs' logs and outputs, and job events on the hub.
type jobAPI struct {
	jobs   *jobs.Engine
	store  *content.Store
	events *hub
}

func (a jobAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodJobSubmit, rpc.Method(a.submit))
	srv.Register(api.MethodJobStatus, rpc.Method(a.status))
	srv.Register(api.MethodJobList, rpc.NoParams(a.list))
	srv.Register(api.MethodJobCancel, rpc.Method(a.cancel))
	srv.Register(api.MethodJobLogs, rpc.Method(a.logs))
	srv.Register(api.MethodJobResult, rpc.Method(a.result))
	srv.RegisterSubscription(api.MethodJobSubscribe, func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p api.JobIDParams
		if err := rpc.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if _, err := a.getJob(p.ID); err != nil {
			return nil, err
		}
		return a.events.subscribe(ctx, jobTopic(p.ID)), nil
	})
}

func (a jobAPI) getJob(id string) (*jobs.Job, error) {
	if id == "" {
		return nil, api.Errorf(api.CodeInvalidParams, "invalid params: id is required")
	}
	j, err := a.jobs.Get(id)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no job %s", id)
	}
	return j, err
}

// replicaInfo fills in the replicas of a replicated job.
func (a jobAPI) replicaInfo(info *api.JobInfo, j *jobs.Job) error {
	if len(j.Replicas) == 0 {
		return nil
	}
	reps, err := a.jobs.Replicas(j)
	if err != nil {
		return err
	}
	for _, r := range reps {
		ri := api.JobReplica{ID: r.ID, State: string(r.State), Attempt: r.Attempt, Provider: r.Provider, Verdict: r.Verdict}
		if res := r.Result; res != nil && res.Attempt == r.Attempt {
			rr := &api.JobReplicaResult{Status: res.Status, ExitCode: res.ExitCode, Outputs: []api.JobOutput{}, ModelCID: res.ModelCID, Metrics: res.Metrics}
			for _, o := range res.Outputs {
				rr.Outputs = append(rr.Outputs, api.JobOutput{Name: o.Name, CID: o.CID, Size: o.Size})
			}
			ri.Result = rr
		}
		if n := len(r.Escrows); n > 0 {
			e := jobEscrow(r.Escrows[n-1])
			ri.Escrow = &e
		}
		info.Replicas = append(info.Replicas, ri)
	}
	return nil
}

func jobEscrow(x jobs.EscrowRecord) api.JobEscrow {
	return api.JobEscrow{ID: x.Terms.JobID, State: string(x.State), Provider: x.ProviderPeer,
		Amount: x.Terms.Amount, Mint: x.Terms.Mint, Vault: x.Terms.Vault, Deadline: x.Terms.Deadline, Tx: x.Tx, Paid: x.Paid, Error: x.Error}
}

func jobInfo(j *jobs.Job, full bool) api.JobInfo {
	info := api.JobInfo{ID: j.ID, State: string(j.State), Attempt: j.Attempt, Kind: j.Spec.Kind, Provider: j.Provider,
		Price: j.Price, Reason: j.Reason, Excluded: j.Excluded, Parent: j.Parent, Spot: j.Spot, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	for _, x := range j.Escrows {
		info.Escrows = append(info.Escrows, jobEscrow(x))
	}
	for _, o := range j.Outcomes {
		rc := api.JobReceipt{Attempt: o.Attempt, Provider: o.Provider, Outcome: o.Outcome, Fault: o.Fault, Reason: o.Reason,
			Price: o.Price, Refusal: o.Countersign, Published: o.Published}
		if o.Receipt != nil {
			rc.ID, rc.Countersigned = o.Receipt.ID(), len(o.Receipt.Countersignature) > 0
			if full {
				rc.Signed, _ = o.Receipt.Marshal()
			}
		}
		info.Receipts = append(info.Receipts, rc)
	}
	if r := j.Result; r != nil && r.Attempt == j.Attempt {
		res := &api.JobResultInfo{Status: r.Status, ExitCode: r.ExitCode, Reason: r.Reason, Outputs: []api.JobOutput{},
			LogCID: r.LogCID, LogTail: r.LogTail, Metrics: r.Metrics, MetricsCID: r.MetricsCID, ModelCID: r.ModelCID, WallMillis: r.Usage.WallMillis, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
		for _, o := range r.Outputs {
			res.Outputs = append(res.Outputs, api.JobOutput{Name: o.Name, CID: o.CID, Size: o.Size})
		}
		if full && j.ResultEnvelope != nil {
			res.Signature, _ = j.ResultEnvelope.Marshal()
		}
		info.Result = res
	}
	if full {
		for _, e := range j.Events {
			info.Events = append(info.Events, api.JobEventInfo{Time: e.Time, State: string(e.State), Detail: e.Detail})
		}
		info.Spec, _ = json.Marshal(j.Spec)
	}
	return info
}

func (a jobAPI) submit(ctx context.Context, p api.JobSubmitParams) (api.JobInfo, error) {
	if len(p.Spec) == 0 {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid params: spec is required")
	}
	spec, err := market.ParseSpec(p.Spec)
	if err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid spec: %v", err)
	}
	if err := checkInputs(ctx, a.store, spec, false); err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid spec: %v", err)
	}
	j, err := a.jobs.Submit(spec)
	if err != nil {
		return api.JobInfo{}, err
	}
	info := jobInfo(j, false)
	return info, a.replicaInfo(&info, j)
}

func (a jobAPI) status(_ context.Context, p api.JobIDParams) (api.JobInfo, error) {
	j, err := a.getJob(p.ID)
	if err != nil {
		return api.JobInfo{}, err
	}
	info := jobInfo(j, true)
	return info, a.replicaInfo(&info, j)
}

func (a jobAPI) list(context.Context) ([]api.JobInfo, error) {
	list, err := a.jobs.List()
	if err != nil {
		return nil, err
	}
	out := []api.JobInfo{}
	for _, j := range list {
		info := jobInfo(j, false)
		if err := a.replicaInfo(&info, j); err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (a jobAPI) cancel(_ context.Context, p api.JobIDParams) (api.JobInfo, error) {
	if _, err := a.getJob(p.ID); err != nil {
		return api.JobInfo{}, err
	}
	j, err := a.jobs.Cancel(p.ID)
	if err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeFailed, "%v", err)
	}
	return jobInfo(j, false), nil
}

func (a jobAPI) logs(ctx context.Context, p api.JobLogsParams) (api.JobLogsResult, error) {
	j, err := a.getJob(p.ID)
	if err != nil {
		return api.JobLogsResult{}, err
	}
	if p.Offset < 0 {
		return api.JobLogsResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: offset is negative")
	}
	out := api.JobLogsResult{Offset: p.Offset, Next: p.Offset, Final: j.State.Final()}
	f, err := os.Open(a.jobs.LogPath(j.ID))
	if err == nil && j.State.Final() && j.Result != nil && j.Result.LogCID != "" {
		// The live stream is best effort; the provider's log by CID is whole.
		f.Close()
		err = os.ErrNotExist
	}
	switch {
	case err == nil:
		defer f.Close()
		buf := make([]byte, maxLogPiece)
		k, err := f.ReadAt(buf, p.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, err
		}
		out.Data, out.Next = string(buf[:k]), p.Offset+int64(k)
		if k == maxLogPiece {
			out.Final = false
		}
	case errors.Is(err, os.ErrNotExist) && j.Result != nil && j.Result.LogCID != "":
		// Nothing was streamed here (a restart, say): read the log by CID.
		c, err := cid.Decode(j.Result.LogCID)
		if err != nil {
			return out, err
		}
		if err := a.jobs.HoldLog(ctx, j); err != nil {
			return out, api.Errorf(api.CodeFailed, "the job's log: %v", err)
		}
		data, size, err := a.store.Read(ctx, c, min(p.Offset, 1<<62), maxLogPiece)
		if err != nil {
			return out, contentError(err)
		}
		out.Data, out.Next = string(data), p.Offset+int64(len(data))
		out.Final = out.Final && out.Next >= size
	}
	return out, nil
}

func (a jobAPI) result(ctx context.Context, p api.JobResultParams) (api.JobInfo, error) {
	j, err := a.getJob(p.ID)
	if err != nil {
		return api.JobInfo{}, err
	}
	if j.State != market.StateSucceeded || j.Result == nil {
		return jobInfo(j, true), api.Errorf(api.CodeFailed, "job %s is %s: no outputs to fetch", j.ID, j.State)
	}
	if p.Output != "" {
		if err := absPath("output", p.Output); err != nil {
			return api.JobInfo{}, err
		}
		if err := os.MkdirAll(p.Output, 0o755); err != nil {
			return api.JobInfo{}, err
		}
		for _, o := range j.Result.Outputs {
			c, err := cid.Decode(o.CID)
			if err != nil {
				return api.JobInfo{}, err
			}
			if _, err := a.store.Get(ctx, c, filepath.Join(p.Output, o.Name), nil); err != nil {
				return api.JobInfo{}, contentError(err)
			}
		}
	}
	info := jobInfo(j, true)
	return info, a.replicaInfo(&info, j)
}
