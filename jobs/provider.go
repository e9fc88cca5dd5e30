package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/trainspec"
	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

func bufReader(s network.Stream) *bufio.Reader { return bufio.NewReader(s) }
func bufWriter(s network.Stream) *bufio.Writer { return bufio.NewWriter(s) }

// validateAnnouncement is the jobs topic's validator: a valid signature by
// the message's author, a fresh and well-formed announcement. Invalid
// messages are rejected (their sender is scored down); replays of an
// announcement already seen are ignored.
func (e *Engine) validateAnnouncement(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.Data) > market.MaxEnvelopeBytes {
		return pubsub.ValidationReject
	}
	env, err := market.ParseEnvelope(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	var a market.Announcement
	signer, err := env.Open(market.TypeAnnouncement, &a)
	if err != nil {
		return pubsub.ValidationReject
	}
	if err := market.CheckAnnouncement(a, signer, time.Now()); err != nil {
		e.log.Debug("announcement rejected", "from", from, "error", err)
		return pubsub.ValidationReject
	}
	// Keyed by requester too: another peer announcing the same job ID
	// must not hide the real requester's announcements.
	key := a.Requester + "/" + auctionKey(a.JobID, a.Attempt)
	e.mu.Lock()
	_, dup := e.seen[key]
	if !dup {
		e.seen[key] = time.Now()
	}
	e.mu.Unlock()
	if dup {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = a
	return pubsub.ValidationAccept
}

// sweepSeen forgets announcements older than they may be replayed.
func (e *Engine) sweepSeen() {
	defer e.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		for k, at := range e.seen {
			if time.Since(at) > 2*market.MaxAnnouncementAge {
				delete(e.seen, k)
			}
		}
		e.mu.Unlock()
	}
}

// readAnnouncements bids for announced jobs the strategy accepts.
func (e *Engine) readAnnouncements() {
	defer e.wg.Done()
	for {
		msg, err := e.sub.Next(e.ctx)
		if err != nil {
			return
		}
		a, ok := msg.ValidatorData.(market.Announcement)
		if !ok || a.Requester == e.self.String() || !e.isProvider() {
			continue
		}
		capacity, ok := e.p.Capacity()
		if !ok {
			continue
		}
		e.mu.Lock()
		load := e.load
		e.mu.Unlock()
		d := e.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: capacity, Load: load})
		if !d.Bid {
			e.log.Debug("not bidding", "job", a.JobID, "reason", d.Reason)
			continue
		}
		bid := market.Bid{JobID: a.JobID, Attempt: a.Attempt, Provider: e.self.String(),
			Price: capacity.Prices.Quote(a.Spec), QueueDepth: e.queueDepth(load), ExpiresAt: time.Now().Add(time.Minute)}
		if a.Spec.Price != nil {
			bid.Mint = a.Spec.Price.Mint
			if st := e.p.Settlement; st != nil && bid.Mint == st.Mint && bid.Price > 0 {
				if st.Arbiter == "" {
					// It could not check an escrow, and takes no job in its
					// mint without one.
					e.log.Debug("not bidding", "job", a.JobID, "reason", "no trusted arbiter (settlement.arbiter)")
					continue
				}
				bid.Payee = st.Escrow.Address()
			}
		}
		e.spawn(func() {
			if err := e.sendBid(a, bid); err != nil {
				e.log.Debug("bid not delivered", "job", a.JobID, "error", err)
			}
		})
	}
}

// strategy is the provider's bid strategy: a job it can run, at its
// price, from a requester it serves, with room in its queue. Jobs beyond
// MaxConcurrent wait in a queue of up to QueueFactor times as many; bids
// say how deep the queue is.
func (e *Engine) strategy() market.BidStrategy {
	return market.All(market.ExecutorSupported(), market.Fits(), market.MinPrice(),
		market.AllowDeny(e.cfg.Allow, e.cfg.Deny), market.QueueRoom(e.cfg.MaxConcurrent, e.cfg.MaxConcurrent*queueFactor))
}

// queueFactor sizes the provider's queue relative to MaxConcurrent.
const queueFactor = 4

// queueDepth is how many jobs would run before a new one.
func (e *Engine) queueDepth(l market.Load) int {
	return max(0, l.Running+l.Queued-e.cfg.MaxConcurrent+1)
}

func (e *Engine) sendBid(a market.Announcement, bid market.Bid) error {
	info, err := addrInfo(a.Requester, a.RequesterAddrs)
	if err != nil {
		return err
	}
	env, err := market.Seal(e.p.Key, market.TypeBid, bid)
	if err != nil {
		return err
	}
	reply, err := e.exchange(info, wire.BidProtocol, env, 5*time.Second)
	if err != nil {
		return err
	}
	return reply.Err()
}

// exchange sends one envelope to a peer, dialling it when needed, and
// returns its reply.
func (e *Engine) exchange(info peer.AddrInfo, proto protocol.ID, env market.Envelope, timeout time.Duration) (wire.Reply, error) {
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	if len(e.p.Host.Network().ConnsToPeer(info.ID)) == 0 {
		if err := e.p.Host.Connect(ctx, info); err != nil {
			return wire.Reply{}, err
		}
	}
	s, r, w, err := e.newStream(ctx, info.ID, proto, timeout)
	if err != nil {
		return wire.Reply{}, err
	}
	defer s.Close()
	if err := writeEnvelope(w, env); err != nil {
		s.Reset()
		return wire.Reply{}, err
	}
	return wire.ReadReply(r)
}

// handleAward answers an award with a signed ack and starts the job.
func (e *Engine) handleAward(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	var award market.Award
	env, err := readEnvelope(r, market.TypeAward, &award)
	if err != nil {
		e.log.Debug("bad award", "peer", s.Conn().RemotePeer(), "error", err)
		s.Reset()
		return
	}
	signer, _ := peer.Decode(env.Signer)
	ack := market.Ack{JobID: award.JobID, Attempt: award.Attempt, Provider: e.self.String()}
	reason := e.takeAward(award, signer, s.Conn().RemotePeer())
	ack.Accepted, ack.Reason = reason == "", reason
	ackEnv, err := market.Seal(e.p.Key, market.TypeAck, ack)
	if err != nil {
		s.Reset()
		return
	}
	if err := writeEnvelope(w, ackEnv); err != nil {
		s.Reset()
		e.log.Warn("ack not delivered", "job", award.JobID, "error", err)
	}
}

// takeAward checks an award and, when it can be run, records the job and
// starts it. It returns why not, or "".
func (e *Engine) takeAward(award market.Award, signer, from peer.ID) string {
	if signer != from {
		return "award not sent by its signer"
	}
	if err := market.CheckAward(award, signer, e.self, time.Now()); err != nil {
		return err.Error()
	}
	capacity, ok := e.p.Capacity()
	if !ok {
		return "no capacity to offer"
	}
	if reason := e.verifyEscrow(award); reason != "" {
		return reason
	}
	key := auctionKey(award.JobID, award.Attempt)
	j, ctx, cancel, reason := e.register(award, capacity, from, key)
	if reason != "" {
		return reason
	}
	e.spawn(func() {
		defer func() {
			e.mu.Lock()
			delete(e.running, key)
			e.mu.Unlock()
			cancel()
		}()
		e.execute(ctx, j)
	})
	return ""
}

// register checks an award against the provider's load and, when it fits,
// records the job as accepted and queued. It returns why not, or "".
func (e *Engine) register(award market.Award, capacity market.Capacity, from peer.ID, key string) (*Job, context.Context, context.CancelFunc, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return nil, nil, nil, "the provider is shutting down"
	}
	if _, dup := e.running[key]; dup {
		return nil, nil, nil, "already running this job"
	}
	a := market.Announcement{JobID: award.JobID, Requester: award.Requester, Attempt: award.Attempt, Spec: award.Spec}
	if d := e.strategy().ShouldBid(market.BidRequest{Announcement: a, Capacity: capacity, Load: e.load}); !d.Bid {
		return nil, nil, nil, d.Reason
	}
	var addrs []string
	for _, ma := range e.p.Host.Peerstore().Addrs(from) {
		addrs = append(addrs, ma.String())
	}
	if award.Escrow != nil {
		if ok, err := e.store.claimVault(award.Escrow.Vault, award.JobID, award.Attempt); err != nil || !ok {
			return nil, nil, nil, "the escrow already pays for another job"
		}
	}
	now := time.Now().UTC()
	j := &Job{ID: award.JobID, Role: RoleProvider, State: market.StateAccepted, Attempt: award.Attempt, Spec: award.Spec,
		Requester: award.Requester, Provider: e.self.String(), Price: award.Price, Deadline: award.Deadline,
		RequesterAddrs: addrs, CreatedAt: now, UpdatedAt: now, Events: []Event{{Time: now, State: market.StateAccepted}}}
	if award.Escrow != nil {
		j.Escrows = []EscrowRecord{{Attempt: award.Attempt, ProviderPeer: e.self.String(), Terms: *award.Escrow, State: EscrowLocked, UpdatedAt: now}}
	}
	if err := e.store.put(j); err != nil {
		return nil, nil, nil, "cannot record the job: " + err.Error()
	}
	ctx, cancel := context.WithDeadline(e.ctx, award.Deadline)
	e.running[key] = cancel
	e.load.Queued++
	return j, ctx, cancel, ""
}

// handleCancel stops a job at its requester's request.
func (e *Engine) handleCancel(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	var c market.Cancel
	env, err := readEnvelope(bufReader(s), market.TypeCancel, &c)
	if err != nil {
		s.Reset()
		return
	}
	j, err := e.store.get(RoleProvider, c.JobID, c.Attempt)
	if err != nil || j.Requester != env.Signer || c.Requester != env.Signer {
		return
	}
	e.mu.Lock()
	stop := e.running[auctionKey(c.JobID, c.Attempt)]
	e.mu.Unlock()
	if stop != nil {
		e.log.Info("job cancelled by its requester", "job", c.JobID, "reason", wire.Truncate(c.Reason, maxPeerReason))
		stop()
	}
}

// execute runs an accepted job: inputs, sandbox, outputs, signed result.
func (e *Engine) execute(ctx context.Context, j *Job) {
	dir := filepath.Join(e.p.WorkDir, "run", fmt.Sprintf("%s-%d", j.ID, j.Attempt))
	defer os.RemoveAll(dir)
	res := market.Result{JobID: j.ID, Attempt: j.Attempt, Provider: e.self.String(), StartedAt: time.Now().UTC()}
	logs := newLogSink(e, j, filepath.Join(dir, "job.log"))
	defer logs.close()

	queued := true
	defer func() {
		if queued {
			e.mu.Lock()
			e.load.Queued--
			e.mu.Unlock()
		}
	}()
	program, usage, outBytes, err := e.prepare(ctx, j, dir)
	res.Usage = usage
	if err == nil {
		err = e.acquireSlot(ctx, j.Spec.Resources)
	}
	// The slot is given back once the job's work is done, before the
	// result is delivered (which may wait for the requester).
	release := func() {}
	if err == nil {
		queued = false
		release = sync.OnceFunc(func() { e.releaseSlot(j.Spec.Resources) })
		defer release()
	}
	if err != nil {
		res.Status, res.ExitCode = market.StatusFailed, providerFault
		res.Reason = "inputs: " + err.Error()
		switch {
		case errors.Is(ctx.Err(), context.Canceled) && e.ctx.Err() == nil:
			res.ExitCode, res.Reason = -1, "cancelled"
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			res.Reason = "the award's deadline passed before the job could run"
		case errors.Is(err, content.ErrUnsafe), errors.Is(err, errInputsTooLarge):
			// The job's own module or inputs would lead out of its folder,
			// or pass its limits: the job's fault, not this provider's.
			res.ExitCode, res.Reason = 1, compute.ReasonBadInput+": "+err.Error()
		}
		e.finish(j, res, logs)
		return
	}
	e.moveProvided(j, market.StateExecuting, "")
	exec := e.p.Executors[j.Spec.Kind]
	cj := compute.Job{
		ID: j.ID, Program: program,
		InDir: filepath.Join(dir, "in"), OutDir: filepath.Join(dir, "out"),
		CPU: j.Spec.Resources.CPU, MemoryMiB: j.Spec.Resources.MemoryMiB, OutBytes: outBytes, Wall: time.Duration(j.Spec.Limits.WallSeconds) * time.Second,
		Stdout: logs.stream("stdout"), Stderr: logs.stream("stderr"), Metrics: logs.stream(MetricsStream),
	}
	if w := j.Spec.WASM; w != nil {
		cj.Args, cj.Env = w.Args, w.Env
	}
	if g := j.Spec.Resources.GPU; g != nil {
		cj.GPUs = g.Count
	}
	out, err := exec.Run(ctx, cj)
	if e.ctx.Err() != nil {
		// This node is shutting down: not the job's fault, so the
		// requester auctions it again.
		res.Status, res.ExitCode, res.Reason = market.StatusFailed, providerFault, "the provider shut down while the job ran"
		e.finish(j, res, logs)
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
		if j.Spec.Kind == market.KindTrain {
			// A failed training run still reports its metrics so far.
			e.addOutputs(ctx, j, filepath.Join(dir, "out"), &res, market.OutputMetrics)
		}
	default:
		res.Status = market.StatusSucceeded
		if err := e.addOutputs(ctx, j, filepath.Join(dir, "out"), &res); err != nil {
			res.Status, res.Reason = market.StatusFailed, err.Error()
			switch {
			case errors.Is(err, errStore):
				res.ExitCode = providerFault // the provider's disk, not the job
			case errors.As(err, new(sandboxError)):
				res.Reason = compute.ReasonSandbox + ": " + err.Error()
			}
		}
		if res.Status == market.StatusSucceeded {
			res.Payout = e.proposeRelease(e.ctx, j)
		}
	}
	release()
	e.finish(j, res, logs)
}

// sandboxError: a job's output tries to lead outside its folder.
type sandboxError string

func (e sandboxError) Error() string { return string(e) }

// errStore: the provider could not store an output (quota, disk).
var errStore = errors.New("cannot store")

// acquireSlot waits until the job may run (see admission) and moves it
// from the queue to the running jobs.
func (e *Engine) acquireSlot(ctx context.Context, r market.Resources) error {
	if err := e.admit.acquire(ctx, int64(r.MemoryMiB)); err != nil {
		return err
	}
	e.mu.Lock()
	e.load.Queued--
	e.load.Running++
	e.load.CPUInUse += r.CPU
	e.load.MemInUse += int64(r.MemoryMiB)
	e.load.DiskInUse += int64(r.DiskMiB)
	e.mu.Unlock()
	return nil
}

func (e *Engine) releaseSlot(r market.Resources) {
	e.mu.Lock()
	e.load.Running--
	e.load.CPUInUse -= r.CPU
	e.load.MemInUse -= int64(r.MemoryMiB)
	e.load.DiskInUse -= int64(r.DiskMiB)
	e.mu.Unlock()
	e.admit.release(int64(r.MemoryMiB))
}

// maxModuleBytes bounds a WASM module: the provider holds it in memory.
const maxModuleBytes = 128 << 20

// prepare fetches the module (or the dataset) and the inputs into dir/in,
// with the input timeout, and returns the module's bytes and what is left
// of the job's disk limit for its outputs.
func (e *Engine) prepare(ctx context.Context, j *Job, dir string) ([]byte, market.Usage, int64, error) {
	var usage market.Usage
	ctx, cancel := context.WithTimeout(ctx, e.cfg.InputTimeout)
	defer cancel()
	for _, d := range []string{filepath.Join(dir, "in"), filepath.Join(dir, "out")} {
		if err := ensureDir(d); err != nil {
			return nil, usage, 0, err
		}
	}
	in := inputs{e: e, ctx: ctx, left: int64(j.Spec.Resources.DiskMiB) << 20, usage: &usage}
	var program []byte
	if t := j.Spec.Train; t != nil {
		var err error
		if program, err = json.Marshal(t); err != nil {
			return nil, usage, 0, err
		}
		if err := in.get("dataset", t.Dataset.CID, filepath.Join(dir, "in", trainspec.DatasetDir), 0); err != nil {
			return nil, usage, 0, err
		}
	} else {
		mod, err := cid.Decode(j.Spec.WASM.Module)
		if err != nil {
			return nil, usage, 0, err
		}
		program, err = e.modules.get(ctx, mod, func() ([]byte, error) {
			modPath := filepath.Join(dir, "module.wasm")
			if err := in.get("module", mod.String(), modPath, maxModuleBytes); err != nil {
				return nil, err
			}
			return os.ReadFile(modPath)
		})
		if err != nil {
			return nil, usage, 0, err
		}
		usage.InputBytes = int64(len(program))
	}
	for _, input := range j.Spec.Inputs {
		if err := in.get("input "+input.Name, input.CID, filepath.Join(dir, "in", input.Name), 0); err != nil {
			return nil, usage, 0, err
		}
	}
	return program, usage, in.left, nil
}

// inputs fetches a job's module and inputs into its folder, each within
// what is left of the job's disk limit.
type inputs struct {
	e     *Engine
	ctx   context.Context
	left  int64
	usage *market.Usage
}

// errInputsTooLarge: a job's module or inputs pass a limit: its disk
// limit, the module's, or this provider's content.max_fetch_mib.
var errInputsTooLarge = errors.New("too large")

// get writes the content c to path, within the disk left and, when
// limit > 0, within limit.
func (in *inputs) get(what, c, path string, limit int64) error {
	id, err := cid.Decode(c)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	bound, which := in.left, "what is left of resources.disk_mib"
	if limit > 0 && limit < bound {
		bound, which = limit, "the limit on its size"
	}
	n, err := in.e.p.Content.GetWithin(in.ctx, id, path, bound)
	if err != nil {
		if errors.Is(err, content.ErrTooLarge) {
			err = fmt.Errorf("%w: %s (%.1f MiB, or content.max_fetch_mib of the provider): %v", errInputsTooLarge, which, float64(bound)/(1<<20), err)
		}
		return fmt.Errorf("%s %s: %w", what, c, err)
	}
	in.left -= n
	in.usage.InputBytes += n
	return nil
}

// addOutputs adds each declared output (or only those named) as UnixFS,
// within its size limit.
func (e *Engine) addOutputs(ctx context.Context, j *Job, outDir string, res *market.Result, only ...string) error {
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
		added, err := e.p.Content.AddUnannounced(ctx, host)
		if errors.Is(err, content.ErrNotRegular) {
			return sandboxError(fmt.Sprintf("output %s (%s): %v", o.Name, o.Path, err))
		}
		if err != nil {
			return fmt.Errorf("%w: output %s: %v", errStore, o.Name, err)
		}
		if limit := market.OutputBlockLimit(o.MaxBytes); added.Blocks > limit {
			// Many small files take more as blocks than as data: the
			// requester would stop fetching it, so it is not sent.
			e.p.Content.Unpin(added.CID)
			return fmt.Errorf("output %s takes %d bytes as blocks (its files and folders), more than the %d its max_bytes %d allows",
				o.Name, added.Blocks, limit, o.MaxBytes)
		}
		res.Outputs = append(res.Outputs, market.OutputRef{Name: o.Name, CID: added.CID.String(), Size: added.Size})
		if j.Spec.Kind == market.KindTrain {
			switch o.Name {
			case market.OutputModel:
				res.ModelCID = added.CID.String()
			case market.OutputMetrics:
				res.MetricsCID = added.CID.String()
			}
		}
		res.Usage.OutputBytes += added.Size
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

// finish signs the result, stores it and delivers it to the requester.
func (e *Engine) finish(j *Job, res market.Result, logs *logSink) {
	logs.close()
	res.LogTail = logs.tail()
	if added, err := e.p.Content.AddUnannounced(e.ctx, logs.path); err == nil {
		res.LogCID = added.CID.String()
	}
	res.FinishedAt = time.Now().UTC()
	if res.FinishedAt.Before(res.StartedAt) {
		res.StartedAt = res.FinishedAt
	}
	res.Reason = wire.Truncate(res.Reason, maxPeerReason)
	j.Result = &res
	e.moveProvided(j, market.StateReporting, res.Status)
	e.deliver(j)
}

// deliver sends the result until the requester takes it or the deadline
// passes.
func (e *Engine) deliver(j *Job) {
	env, err := market.Seal(e.p.Key, market.TypeResult, *j.Result)
	if err != nil {
		e.moveProvided(j, market.StateFailed, err.Error())
		return
	}
	j.ResultEnvelope = &env
	info, _ := addrInfo(j.Requester, j.RequesterAddrs)
	backoff := 200 * time.Millisecond
	for {
		err := e.sendResult(info, env)
		if errors.Is(err, errRejected) {
			e.moveProvided(j, market.StateFailed, "result refused by the requester: "+err.Error())
			e.releaseContent(j)
			return
		}
		if err == nil {
			final := market.StateSucceeded
			if j.Result.Status != market.StatusSucceeded {
				final = market.StateFailed
			}
			e.moveProvided(j, final, "result delivered")
			e.releaseContent(j)
			return
		}
		if time.Now().After(j.Deadline.Add(time.Hour)) || e.ctx.Err() != nil {
			if e.ctx.Err() == nil {
				e.moveProvided(j, market.StateFailed, "result not delivered: "+err.Error())
			}
			return
		}
		e.log.Debug("result not delivered yet", "job", j.ID, "error", err)
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (e *Engine) sendResult(info peer.AddrInfo, env market.Envelope) error {
	reply, err := e.exchange(info, wire.ResultProtocol, env, 10*time.Second)
	if err != nil {
		return err
	}
	switch reply.Code {
	case wire.CodeOK, wire.CodeFinal:
		return nil
	case wire.CodeRejected:
		return fmt.Errorf("%w: %w", errRejected, reply.Err())
	}
	return reply.Err()
}

// errRejected: the requester refused the result for good.
var errRejected = errors.New("refused")

// releaseContent unpins a delivered job's outputs and log on the provider:
// they stay available until the next garbage collection, by which time
// the requester holds its own copy.
func (e *Engine) releaseContent(j *Job) {
	if j.Result == nil {
		return
	}
	cids := []string{j.Result.LogCID}
	for _, o := range j.Result.Outputs {
		cids = append(cids, o.CID)
	}
	for _, s := range cids {
		if c, err := cid.Decode(s); err == nil {
			e.p.Content.Unpin(c)
		}
	}
}

func (e *Engine) moveProvided(j *Job, to market.State, detail string) {
	if err := j.move(to, detail); err != nil {
		e.log.Warn("provider job state", "job", j.ID, "error", err)
		return
	}
	if err := e.store.put(j); err != nil {
		e.log.Error("store provider job", "job", j.ID, "error", err)
	}
}

// recoverProvided handles a job left unfinished by a restart: a job that
// was running cannot be resumed, so the requester hears it failed through
// the provider's fault and auctions it again; a finished one is delivered.
func (e *Engine) recoverProvided(j *Job) {
	switch j.State {
	case market.StateReporting:
		if j.Result != nil {
			e.deliver(j)
			return
		}
		fallthrough
	default:
		now := time.Now().UTC()
		j.Result = &market.Result{JobID: j.ID, Attempt: j.Attempt, Provider: e.self.String(), Status: market.StatusFailed,
			ExitCode: providerFault, Reason: "the provider restarted while the job ran", StartedAt: now, FinishedAt: now}
		if j.State != market.StateReporting {
			e.moveProvided(j, market.StateReporting, "restarted")
		}
		e.deliver(j)
	}
}

// moduleCache keeps recently run modules' bytes, so that a provider does
// not read a module from its store for every job.
type moduleCache struct {
	mu    sync.Mutex
	mods  map[cid.Cid][]byte
	order []cid.Cid
	size  int
}

const moduleCacheBytes = 64 << 20

func (m *moduleCache) get(ctx context.Context, c cid.Cid, load func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	if b, ok := m.mods[c]; ok {
		m.mu.Unlock()
		return b, nil
	}
	m.mu.Unlock()
	b, err := load()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mods == nil {
		m.mods = map[cid.Cid][]byte{}
	}
	if _, ok := m.mods[c]; !ok && len(b) <= moduleCacheBytes {
		m.mods[c] = b
		m.order = append(m.order, c)
		m.size += len(b)
		for m.size > moduleCacheBytes {
			old := m.order[0]
			m.order = m.order[1:]
			m.size -= len(m.mods[old])
			delete(m.mods, old)
		}
	}
	return b, nil
}
