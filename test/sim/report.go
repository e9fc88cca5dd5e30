package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Bounds of one run: virtual time and events.
const (
	horizon   = 24 * time.Hour
	maxEvents = 2_000_000_000
)

// errUnfinished reports a run that hit its bounds before every event ran.
var errUnfinished = errors.New("simulation stopped at its bounds")

// Report is what one run measured.
type Report struct {
	Params Params
	// Started, Failed and Waiting count the jobs by their state at the
	// end; Results counts the results the requesters accepted.
	Started, Failed, Waiting, Results int
	// StartP50 and StartP99 are submit→start (the provider's ack) in
	// virtual time, over the started jobs.
	StartP50, StartP99 time.Duration
	// Auctions counts announcements; Awarded those that ended in an acked
	// award.
	Auctions, Awarded int64
	// Msgs and Bytes are the messages and bytes of the whole run, sent
	// plus received, over all nodes.
	Msgs, Bytes int64
	// RequesterMsgs is the mean, per job, of the messages its requester
	// sent plus received for it.
	RequesterMsgs float64
	// ByKind and BytesByKind split Msgs and Bytes by kind of message.
	ByKind, BytesByKind map[string]int64
	// AnnounceBytes is the size of an announcement envelope.
	AnnounceBytes int
	// Reached is the share of (announcement, node) pairs delivered.
	Reached float64
	// SpreadP50 and SpreadP99 are publish→first copy, over those pairs.
	SpreadP50, SpreadP99 time.Duration
	// BidsPerAuction counts the bids that reached the requester, in time or
	// late; LatePerAuction those that came after it closed.
	BidsPerAuction, LatePerAuction float64
	// NeighbourWins is the share of awards won by one of the requester's
	// own topic peers.
	NeighbourWins float64
	// AcksLost and Refused count awards that got no ack in time, or a
	// refusal.
	AcksLost, Refused int64
	// CPU is the real time spent in the market package, per operation,
	// and Calls how often each ran.
	CPU   map[string]time.Duration
	Calls map[string]int64
	// Events and Wall are the simulator's own cost.
	Events int64
	Wall   time.Duration
}

// Run simulates one swarm and reports what it measured.
func Run(p Params) (Report, error) {
	start := time.Now()
	s, err := newSim(p)
	if err != nil {
		return Report{}, err
	}
	var spread []time.Duration
	reached := int64(0)
	s.g.onFirst = func(m *message, d time.Duration) {
		reached++
		spread = append(spread, d)
	}
	if err := s.submitAll(); err != nil {
		return Report{}, err
	}
	if !s.net.run(horizon, maxEvents) {
		return Report{}, fmt.Errorf("%w: %d events, %s virtual", errUnfinished, s.net.events, s.net.now)
	}
	r := Report{Params: p, Auctions: s.st.auctions, Awarded: s.st.awarded, ByKind: s.net.byKind,
		BytesByKind: s.net.bytesByKind, AcksLost: s.st.acksLost, Refused: s.st.refused, CPU: s.cpu, Calls: s.calls,
		Events: s.net.events, Results: int(s.st.results)}
	var waits []time.Duration
	for _, j := range s.jobs {
		switch j.state {
		case stateRunning:
			r.Started++
			waits = append(waits, j.started-j.submitted)
		case stateFailed:
			r.Failed++
		default:
			r.Waiting++
		}
	}
	if s.st.awarded > 0 {
		r.NeighbourWins = float64(s.st.neighbourWins) / float64(s.st.awarded)
	}
	r.StartP50, r.StartP99 = percentile(waits, 0.50), percentile(waits, 0.99)
	r.SpreadP50, r.SpreadP99 = percentile(spread, 0.50), percentile(spread, 0.99)
	if s.st.auctions > 0 {
		r.Reached = float64(reached) / float64(s.st.auctions*int64(p.Nodes-1))
		r.BidsPerAuction = float64(s.st.bidsDelivered) / float64(s.st.auctions)
		r.LatePerAuction = float64(s.st.bidsLate) / float64(s.st.auctions)
	}
	for _, c := range s.net.counts {
		r.Msgs += c.sent + c.recv
		r.Bytes += c.bytesSent + c.bytesRecv
	}
	// Every stream message has the job's requester at one end: its share
	// is half of their sent plus received, and it gossips like any node.
	var stream, gossipMsgs int64
	for k, n := range s.net.byKind {
		if streamKinds[k] {
			stream += n
		} else {
			gossipMsgs += n
		}
	}
	r.RequesterMsgs = float64(stream)/2/float64(p.Jobs) + float64(gossipMsgs)/float64(p.Nodes)/float64(p.Jobs)
	r.AnnounceBytes = s.announceBytes
	r.Wall = time.Since(start)
	return r, nil
}

// streamKinds are the kinds of message sent over a direct stream between
// a requester and a provider, rather than on the topic.
var streamKinds = map[string]bool{"dial": true, "bid": true, "bid reply": true, "award": true, "ack": true,
	"cancel": true, "result": true, "result reply": true}

// percentile is the q-quantile of ds (0 when empty).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// PerNodeJob is the run's messages per node per job, sent plus received.
func (r Report) PerNodeJob() float64 {
	return float64(r.Msgs) / float64(r.Params.Nodes) / float64(r.Params.Jobs)
}

// BytesPerNodeJob is the run's bytes per node per job, sent plus received.
func (r Report) BytesPerNodeJob() float64 {
	return float64(r.Bytes) / float64(r.Params.Nodes) / float64(r.Params.Jobs)
}

// Success is the share of auctions that ended in an acked award.
func (r Report) Success() float64 {
	if r.Auctions == 0 {
		return 0
	}
	return float64(r.Awarded) / float64(r.Auctions)
}

// Check reports a run that does not account for every job.
func (r Report) Check() error {
	var errs []error
	if r.Started+r.Failed+r.Waiting != r.Params.Jobs {
		errs = append(errs, fmt.Errorf("%d started + %d failed + %d waiting != %d jobs", r.Started, r.Failed, r.Waiting, r.Params.Jobs))
	}
	if r.Waiting != 0 {
		errs = append(errs, fmt.Errorf("%d jobs still waiting when the run ended", r.Waiting))
	}
	if int64(r.Started) != r.Awarded {
		errs = append(errs, fmt.Errorf("%d jobs started, %d auctions awarded", r.Started, r.Awarded))
	}
	if r.Results != r.Started {
		errs = append(errs, fmt.Errorf("%d results for %d started jobs", r.Results, r.Started))
	}
	if r.Auctions < int64(r.Params.Jobs) {
		errs = append(errs, fmt.Errorf("%d auctions for %d jobs", r.Auctions, r.Params.Jobs))
	}
	var kinds int64
	for _, n := range r.ByKind {
		kinds += n
	}
	if kinds < r.Msgs {
		errs = append(errs, fmt.Errorf("messages by kind %d < %d counted per node", kinds, r.Msgs))
	}
	return errors.Join(errs...)
}

// header is the table's first line.
const header = "nodes   jobs  started  start p50  start p99  auction ok  msgs/node/job  bytes/node/job  rq msgs/job  bids/auction  reached  spread p99  wall"

// row is one run's line of the table.
func (r Report) row() string {
	return fmt.Sprintf("%-7d %-5d %-8d %-10s %-10s %-11s %-14.1f %-15.0f %-12.0f %-13.1f %-8s %-11s %s",
		r.Params.Nodes, r.Params.Jobs, r.Started, r.StartP50.Round(time.Millisecond), r.StartP99.Round(time.Millisecond),
		fmt.Sprintf("%.1f %%", 100*r.Success()), r.PerNodeJob(), r.BytesPerNodeJob(), r.RequesterMsgs, r.BidsPerAuction,
		fmt.Sprintf("%.2f %%", 100*r.Reached), r.SpreadP99.Round(time.Millisecond), r.Wall.Round(100*time.Millisecond))
}

// details writes the run's breakdown: messages by kind, the market code's
// real CPU time per operation.
func (r Report) details(w io.Writer) {
	per := float64(r.Params.Nodes) * float64(r.Params.Jobs)
	fmt.Fprintf(w, "\n%d nodes: announcement %d bytes; %d auctions, %d awarded, %d acks lost, %d refused; %.1f late bids per auction; %.0f %% of awards won by the requester's own topic peers; %d events\n",
		r.Params.Nodes, r.AnnounceBytes, r.Auctions, r.Awarded, r.AcksLost, r.Refused, r.LatePerAuction, 100*r.NeighbourWins, r.Events)
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %.2f msgs %.0f B", k, float64(r.ByKind[k])/per, float64(r.BytesByKind[k])/per))
	}
	fmt.Fprintf(w, "  per node per job: %s\n", strings.Join(parts, ", "))
	ops := make([]string, 0, len(r.CPU))
	for k := range r.CPU {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	parts = parts[:0]
	for _, k := range ops {
		parts = append(parts, fmt.Sprintf("%s %d×%.0fµs", k, r.Calls[k], float64(r.CPU[k].Microseconds())/float64(max(1, r.Calls[k]))))
	}
	fmt.Fprintf(w, "  market code, real CPU: %s\n", strings.Join(parts, ", "))
}
