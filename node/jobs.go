package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/ipfs/go-cid"
)

// maxLogPiece bounds one job.logs answer.
const maxLogPiece = 1 << 20

func jobTopic(id string) string { return "job/" + id }

// jobNotify turns engine events into subscription notifications.
func (n *Node) jobNotify(id string, ev any) {
	switch ev := ev.(type) {
	case jobs.Event:
		n.events.publish(jobTopic(id), api.JobNotification{Type: "event", ID: id, State: string(ev.State), Detail: ev.Detail, Time: ev.Time})
	case jobs.LogLine:
		n.events.publish(jobTopic(id), api.JobNotification{Type: "log", ID: id, Stream: ev.Stream, Data: ev.Data, Time: time.Now().UTC()})
	}
}

func (n *Node) registerJobs() {
	n.rpc.Register(api.MethodJobSubmit, rpc.Method(n.jobSubmit))
	n.rpc.Register(api.MethodJobStatus, rpc.Method(n.jobStatus))
	n.rpc.Register(api.MethodJobList, rpc.NoParams(n.jobList))
	n.rpc.Register(api.MethodJobCancel, rpc.Method(n.jobCancel))
	n.rpc.Register(api.MethodJobLogs, rpc.Method(n.jobLogs))
	n.rpc.Register(api.MethodJobResult, rpc.Method(n.jobResult))
	n.rpc.RegisterSubscription(api.MethodJobSubscribe, func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p api.JobIDParams
		if err := rpc.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if _, err := n.getJob(p.ID); err != nil {
			return nil, err
		}
		return n.events.subscribe(ctx, jobTopic(p.ID)), nil
	})
}

func (n *Node) getJob(id string) (*jobs.Job, error) {
	if id == "" {
		return nil, api.Errorf(api.CodeInvalidParams, "invalid params: id is required")
	}
	j, err := n.jobs.Get(id)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no job %s", id)
	}
	return j, err
}

func jobInfo(j *jobs.Job, full bool) api.JobInfo {
	info := api.JobInfo{ID: j.ID, State: string(j.State), Attempt: j.Attempt, Kind: j.Spec.Kind, Provider: j.Provider,
		Price: j.Price, Reason: j.Reason, Excluded: j.Excluded, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	for _, x := range j.Escrows {
		info.Escrows = append(info.Escrows, api.JobEscrow{ID: x.Terms.ID, State: string(x.State), Provider: x.ProviderPeer,
			Amount: x.Terms.Amount, Mint: x.Terms.Mint, Vault: x.Terms.Vault, Deadline: x.Terms.Deadline, Tx: x.Tx, Error: x.Error})
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

func (n *Node) jobSubmit(ctx context.Context, p api.JobSubmitParams) (api.JobInfo, error) {
	if len(p.Spec) == 0 {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid params: spec is required")
	}
	spec, err := market.ParseSpec(p.Spec)
	if err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid spec: %v", err)
	}
	if err := n.checkInputs(ctx, spec, false); err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeInvalidParams, "invalid spec: %v", err)
	}
	j, err := n.jobs.Submit(spec)
	if err != nil {
		return api.JobInfo{}, err
	}
	return jobInfo(j, false), nil
}

func (n *Node) jobStatus(_ context.Context, p api.JobIDParams) (api.JobInfo, error) {
	j, err := n.getJob(p.ID)
	if err != nil {
		return api.JobInfo{}, err
	}
	return jobInfo(j, true), nil
}

func (n *Node) jobList(context.Context) ([]api.JobInfo, error) {
	list, err := n.jobs.List()
	if err != nil {
		return nil, err
	}
	out := []api.JobInfo{}
	for _, j := range list {
		out = append(out, jobInfo(j, false))
	}
	return out, nil
}

func (n *Node) jobCancel(_ context.Context, p api.JobIDParams) (api.JobInfo, error) {
	if _, err := n.getJob(p.ID); err != nil {
		return api.JobInfo{}, err
	}
	j, err := n.jobs.Cancel(p.ID)
	if err != nil {
		return api.JobInfo{}, api.Errorf(api.CodeFailed, "%v", err)
	}
	return jobInfo(j, false), nil
}

func (n *Node) jobLogs(ctx context.Context, p api.JobLogsParams) (api.JobLogsResult, error) {
	j, err := n.getJob(p.ID)
	if err != nil {
		return api.JobLogsResult{}, err
	}
	if p.Offset < 0 {
		return api.JobLogsResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: offset is negative")
	}
	out := api.JobLogsResult{Offset: p.Offset, Next: p.Offset, Final: j.State.Final()}
	f, err := os.Open(n.jobs.LogPath(j.ID))
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
		if err := n.jobs.HoldLog(ctx, j); err != nil {
			return out, api.Errorf(api.CodeFailed, "the job's log: %v", err)
		}
		data, size, err := n.store.Read(ctx, c, min(p.Offset, 1<<62), maxLogPiece)
		if err != nil {
			return out, contentError(err)
		}
		out.Data, out.Next = string(data), p.Offset+int64(len(data))
		out.Final = out.Final && out.Next >= size
	}
	return out, nil
}

func (n *Node) jobResult(ctx context.Context, p api.JobResultParams) (api.JobInfo, error) {
	j, err := n.getJob(p.ID)
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
			if _, err := n.store.Get(ctx, c, filepath.Join(p.Output, o.Name), nil); err != nil {
				return api.JobInfo{}, contentError(err)
			}
		}
	}
	return jobInfo(j, true), nil
}
