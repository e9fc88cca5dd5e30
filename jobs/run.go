package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
)

// execute runs an accepted job: inputs, sandbox, outputs, signed result.
func (pv *provider) execute(ctx context.Context, j *Job) {
	dir := filepath.Join(pv.p.WorkDir, "run", fmt.Sprintf("%s-%d", j.ID, j.Attempt))
	defer os.RemoveAll(dir)
	res := market.Result{JobID: j.ID, Attempt: j.Attempt, Provider: pv.self.String(), StartedAt: time.Now().UTC()}
	logs := newLogSink(pv.core, j, filepath.Join(dir, "job.log"))
	defer logs.close()

	queued := true
	defer func() {
		if queued {
			pv.mu.Lock()
			pv.load.Queued--
			pv.mu.Unlock()
		}
	}()
	exec := pv.p.Executors[j.Spec.Kind]
	cj, usage, err := pv.stage(ctx, j, exec, dir)
	res.Usage = usage
	if err == nil {
		err = pv.acquireSlot(ctx, j.Spec.Resources)
	}
	// The slot is given back once the job's work is done, before the
	// result is delivered (which may wait for the requester).
	release := func() {}
	if err == nil {
		queued = false
		release = sync.OnceFunc(func() { pv.releaseSlot(j.Spec.Resources) })
		defer release()
	}
	if err != nil {
		res.Status, res.ExitCode = market.StatusFailed, providerFault
		res.Reason = "inputs: " + err.Error()
		switch {
		case errors.Is(ctx.Err(), context.Canceled) && pv.ctx.Err() == nil:
			res.ExitCode, res.Reason = -1, "cancelled"
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			res.Reason = "the award's deadline passed before the job could run"
		case errors.Is(err, content.ErrUnsafe), errors.Is(err, errInputsTooLarge):
			// The job's own module or inputs would lead out of its folder,
			// or pass its limits: the job's fault, not this provider's.
			res.ExitCode, res.Reason = 1, compute.ReasonBadInput+": "+err.Error()
		case errors.Is(err, compute.ErrBadSpec):
			res.ExitCode, res.Reason = 1, compute.ReasonBadProgram+": "+err.Error()
		}
		pv.finish(j, res, logs)
		return
	}
	pv.moveProvided(j, market.StateExecuting, "")
	cj.Stdout, cj.Stderr, cj.Metrics = logs.stream("stdout"), logs.stream("stderr"), logs.stream(MetricsStream)
	out, err := exec.Run(ctx, cj)
	if pv.ctx.Err() != nil {
		// This node is shutting down: not the job's fault, so the
		// requester auctions it again.
		res.Status, res.ExitCode, res.Reason = market.StatusFailed, providerFault, "the provider shut down while the job ran"
		pv.finish(j, res, logs)
		return
	}
	res.StartedAt = out.StartedAt.UTC()
	res.Usage.WallMillis = out.Wall.Milliseconds()
	res.Usage.CompileMillis = out.CompileTime.Milliseconds()
	res.ExitCode = out.ExitCode
	res.Metrics = out.Metrics
	switch {
	case err != nil:
		res.Status, res.Reason = market.StatusFailed, err.Error()
	case !out.OK():
		res.Status, res.Reason = market.StatusFailed, out.Reason+": "+out.Detail
		if keep := j.Spec.KeptOnFailure(); len(keep) > 0 {
			pv.addOutputs(ctx, j, filepath.Join(dir, "out"), &res, keep...)
		}
		if stoppedEarly(ctx, j, out) {
			// A deployment its requester stopped: paid for the time served.
			pv.pay.proposeHosting(pv.ctx, j, out.Wall, &res)
		}
	default:
		res.Status = market.StatusSucceeded
		if err := pv.addOutputs(ctx, j, filepath.Join(dir, "out"), &res); err != nil {
			res.Status, res.Reason = market.StatusFailed, err.Error()
			switch {
			case errors.Is(err, errStore):
				res.ExitCode = providerFault // the provider's disk, not the job
			case errors.As(err, new(sandboxError)):
				res.Reason = compute.ReasonSandbox + ": " + err.Error()
			}
		}
		if res.Status == market.StatusSucceeded {
			res.Payout = pv.pay.proposeRelease(pv.ctx, j)
		}
	}
	release()
	pv.finish(j, res, logs)
}

// sandboxError: a job's output tries to lead outside its folder.
type sandboxError string

func (e sandboxError) Error() string { return string(e) }

// errStore: the provider could not store an output (quota, disk).
var errStore = errors.New("cannot store")

// acquireSlot waits until the job may run (see admission) and moves it
// from the queue to the running jobs.
func (pv *provider) acquireSlot(ctx context.Context, r market.Resources) error {
	if err := pv.admit.acquire(ctx, int64(r.MemoryMiB)); err != nil {
		return err
	}
	pv.mu.Lock()
	pv.load.Queued--
	pv.load.Running++
	pv.load.CPUInUse += r.CPU
	pv.load.MemInUse += int64(r.MemoryMiB)
	pv.load.DiskInUse += int64(r.DiskMiB)
	pv.mu.Unlock()
	return nil
}

func (pv *provider) releaseSlot(r market.Resources) {
	pv.mu.Lock()
	pv.load.Running--
	pv.load.CPUInUse -= r.CPU
	pv.load.MemInUse -= int64(r.MemoryMiB)
	pv.load.DiskInUse -= int64(r.DiskMiB)
	pv.mu.Unlock()
	pv.admit.release(int64(r.MemoryMiB))
}

// addOutputs adds each declared output (or only those named) as UnixFS,
// within its size limit.
func (pv *provider) addOutputs(ctx context.Context, j *Job, outDir string, res *market.Result, only ...string) error {
	for _, o := range j.Spec.Outputs {
		if len(only) > 0 && !slices.Contains(only, o.Name) {
			continue
		}
		host, err := outputPath(outDir, o.Path)
		if err != nil {
			return fmt.Errorf("output %s (%s): %w", o.Name, o.Path, err)
		}
		size, err := content.TreeSize(host)
		if errors.Is(err, content.ErrNotRegular) {
			return sandboxError(fmt.Sprintf("output %s (%s): %v", o.Name, o.Path, err))
		}
		if err != nil {
			return fmt.Errorf("output %s (%s): %w", o.Name, o.Path, err)
		}
		if size > o.MaxBytes {
			return fmt.Errorf("output %s is %d bytes, more than its max_bytes %d", o.Name, size, o.MaxBytes)
		}
		added, err := pv.p.Content.AddUnannounced(ctx, host)
		if errors.Is(err, content.ErrNotRegular) {
			return sandboxError(fmt.Sprintf("output %s (%s): %v", o.Name, o.Path, err))
		}
		if err != nil {
			return fmt.Errorf("%w: output %s: %w", errStore, o.Name, err)
		}
		if limit := market.OutputBlockLimit(o.MaxBytes); added.Blocks > limit {
			// Many small files take more as blocks than as data: the
			// requester would stop fetching it, so it is not sent.
			pv.p.Content.Unpin(added.CID)
			return fmt.Errorf("output %s takes %d bytes as blocks (its files and folders), more than the %d its max_bytes %d allows",
				o.Name, added.Blocks, limit, o.MaxBytes)
		}
		res.AddOutput(j.Spec.Kind, market.OutputRef{Name: o.Name, CID: added.CID.String(), Size: added.Size})
	}
	return nil
}

// outputPath is where an output's guest path (/out/a/b) is on the host,
// found without following links: an output whose path passes through a
// symlink, or is one, is refused (a link could lead anywhere on the host).
func outputPath(outDir, guest string) (string, error) {
	host := outDir
	parts := strings.Split(strings.TrimPrefix(guest, "/out/"), "/")
	for i, part := range parts {
		host = filepath.Join(host, part)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return "", sandboxError("/out/" + strings.Join(parts[:i+1], "/") + " is a symbolic link, which outputs may not be or pass through")
		case i < len(parts)-1 && !fi.IsDir():
			return "", fmt.Errorf("%s is not a folder", "/out/"+strings.Join(parts[:i+1], "/"))
		}
	}
	return host, nil
}
