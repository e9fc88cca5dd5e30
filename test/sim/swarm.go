package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Params describe one simulated swarm and its workload.
type Params struct {
	// Nodes is the size of the swarm; every node subscribes to the jobs
	// topic and may submit jobs.
	Nodes int
	// Jobs is how many jobs are submitted, by nodes drawn at random.
	Jobs int
	// Rate is the swarm's job rate, per second of virtual time (Poisson).
	Rate float64
	// RTTMin and RTTMax bound the round trip of every pair of nodes.
	RTTMin, RTTMax time.Duration
	// Loss is the chance that one transmission is lost.
	Loss float64
	// Providers is the share of nodes that run jobs.
	Providers float64
	// ExtraPeers is how many topic peers each node has beyond its mesh.
	ExtraPeers int
	// Seed makes a run reproducible.
	Seed uint64
	// Config is the jobs engine's timing: bid window, grace, enough bids,
	// ack timeout, queue limits.
	Config jobs.Config
}

// DefaultParams returns a 1,000-node swarm over links of 10-300 ms RTT
// and 1 % loss, with the jobs engine's default timing.
func DefaultParams() Params {
	return Params{Nodes: 1000, Jobs: 50, Rate: 1, RTTMin: 10 * time.Millisecond, RTTMax: 300 * time.Millisecond,
		Loss: 0.01, Providers: 1, ExtraPeers: 8, Seed: 1, Config: jobs.DefaultConfig()}
}

// testMint is the token the simulated jobs are priced in.
const testMint = "So11111111111111111111111111111111111111112"

// maxQueueWaits mirrors the jobs engine's bound on the queued jobs that
// lengthen an award's deadline.
const maxQueueWaits = 4

// queueFactor mirrors the provider's queue of QueueFactor times
// MaxConcurrent jobs.
const queueFactor = 4

// node is one simulated peer: its real identity and, as a provider, its
// offer and load.
type node struct {
	key      crypto.PrivKey
	id       peer.ID
	text     string
	provider bool
	capacity market.Capacity
	load     market.Load
	queued   []*job
	// conns are the peers it has a direct connection to besides its
	// topic peers.
	conns map[int32]bool
	// tally is the requester's record of outcomes per provider.
	tally map[string]market.Outcomes
	// auctions are its open and closed auctions, by job and attempt.
	auctions map[string]*auction
	// taken are the awards it acked and has not finished, by job.
	taken map[string]bool
}

// job is one submitted job as the simulation follows it.
type job struct {
	id        string
	requester int32
	spec      market.Spec
	runtime   time.Duration
	submitted time.Duration
	waiting   time.Duration
	started   time.Duration
	attempt   int
	state     string
	provider  int32
	award     market.Award
	done      bool
}

// Job states as the simulation records them.
const (
	stateWaiting = "waiting"
	stateRunning = "running"
	stateFailed  = "failed"
)

// sim is one run: the network, the topic, the swarm and its jobs.
type sim struct {
	p     Params
	cfg   jobs.Config
	net   *network
	g     *gossip
	nodes []*node
	jobs  []*job
	base  time.Time
	rng   *rand.Rand
	// cpu is the real time spent in the market package, per operation.
	cpu map[string]time.Duration
	// calls counts those operations.
	calls map[string]int64
	st    tallies
	// announceBytes is the size of the last announcement envelope.
	announceBytes int
	// byText finds a node by its peer ID text.
	byText map[string]int32
}

// tallies are the auction's counts over the run.
type tallies struct {
	auctions, awarded, noBids, allRefused int64
	bidsDelivered, bidsLate               int64
	awardsSent, acksLost, refused         int64
	results, rejected, neighbourWins      int64
}

// errParams reports parameters the simulation cannot run.
var errParams = errors.New("simulation parameters")

func newSim(p Params) (*sim, error) {
	if p.Nodes < 2 || p.Jobs < 1 || p.Rate <= 0 || p.RTTMin <= 0 || p.RTTMax < p.RTTMin || p.Loss < 0 || p.Loss >= 1 {
		return nil, fmt.Errorf("%w: need 2+ nodes, 1+ jobs, a positive rate, 0 < rtt-min <= rtt-max, loss in [0, 1)", errParams)
	}
	s := &sim{p: p, cfg: p.Config, net: newNetwork(p.Nodes, p.RTTMin, p.RTTMax, p.Loss, p.Seed),
		base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(p.Seed, 7)),
		cpu: map[string]time.Duration{}, calls: map[string]int64{}, byText: map[string]int32{}}
	s.g = &gossip{net: s.net, o: buildOverlay(p.Nodes, p.ExtraPeers, s.rng), rng: s.rng}
	keys := rand.NewChaCha8([32]byte{byte(p.Seed), byte(p.Seed >> 8), 99, 121, 120})
	for i := range p.Nodes {
		key, _, err := crypto.GenerateEd25519Key(keys)
		if err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("peer id: %w", err)
		}
		n := &node{key: key, id: id, text: id.String(), provider: s.rng.Float64() < p.Providers,
			conns: map[int32]bool{}, tally: map[string]market.Outcomes{}, auctions: map[string]*auction{}, taken: map[string]bool{}}
		n.capacity = s.drawCapacity(n)
		s.nodes = append(s.nodes, n)
		s.byText[n.text] = int32(i)
	}
	return s, nil
}

// drawCapacity gives a provider an offer: 2 to 64 cores, 4 to 256 GiB,
// a wasm executor, a price per CPU second of 1 to 20 base units.
func (s *sim) drawCapacity(n *node) market.Capacity {
	cores := 2 << s.rng.IntN(6)
	return market.Capacity{Peer: n.text, CPUCores: cores, MemoryMiB: int64(cores) * 2048, DiskMiB: 100 << 10,
		Executors: []string{market.KindWASM},
		Prices:    market.PriceList{PerCPUSecond: uint64(1 + s.rng.IntN(20)), Mint: testMint},
		IssuedAt:  s.base, ExpiresAt: s.base.Add(time.Hour)}
}

// drawSpec makes a job: a wasm module of 1 to 8 CPUs and 256 MiB to
// 4 GiB, a wall limit of 60 s, a price cap; it runs 5 to 60 s.
func (s *sim) drawSpec() (market.Spec, time.Duration, error) {
	const cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	text := fmt.Sprintf(`{"kind":"wasm","wasm":{"module":%q,"args":["--n","3"]},
	"inputs":[{"name":"data.csv","cid":%q}],
	"outputs":[{"name":"result","path":"/out/result.txt","max_bytes":1048576}],
	"resources":{"cpu":%d,"memory_mib":%d,"disk_mib":64},
	"limits":{"wall_seconds":60},
	"price":{"max":"1000000","mint":%q},
	"verification":{"mode":"none"}}`, cid, cid, 1<<s.rng.IntN(4), 256<<s.rng.IntN(5), testMint)
	spec, err := market.ParseSpec([]byte(text))
	if err != nil {
		return market.Spec{}, 0, fmt.Errorf("parse spec: %w", err)
	}
	run := 5*time.Second + time.Duration(s.rng.Int64N(int64(55*time.Second)))
	return spec, run, nil
}

// clock is the virtual time as a wall-clock date, for the market's checks.
func (s *sim) clock() time.Time { return s.base.Add(s.net.now) }

// timed runs fn and adds its real duration to op's CPU figure.
func (s *sim) timed(op string, fn func() error) error {
	start := time.Now()
	err := fn()
	s.cpu[op] += time.Since(start)
	s.calls[op]++
	return err
}

// jobID makes the i-th job's ID: 26 characters of 0-9A-Z.
func jobID(i int) string { return fmt.Sprintf("SIM%023d", i) }

// submitAll schedules the jobs at Poisson arrivals from random nodes.
func (s *sim) submitAll() error {
	var at time.Duration
	for i := range s.p.Jobs {
		spec, run, err := s.drawSpec()
		if err != nil {
			return err
		}
		j := &job{id: jobID(i), requester: int32(s.rng.IntN(s.p.Nodes)), spec: spec, runtime: run, state: stateWaiting, provider: -1}
		s.jobs = append(s.jobs, j)
		at += time.Duration(s.rng.ExpFloat64() / s.p.Rate * float64(time.Second))
		s.net.at(at, func() {
			j.submitted, j.waiting = s.net.now, s.net.now
			s.startAuction(j)
		})
	}
	return nil
}

// strategy is the provider's bid strategy, composed as the jobs engine
// composes it from the market's strategies.
func (s *sim) strategy() market.BidStrategy {
	mc := s.cfg.MaxConcurrent
	return market.All(market.ExecutorSupported(), market.Fits(), market.MinPrice(),
		market.AllowDeny(s.cfg.Allow, s.cfg.Deny), market.QueueRoom(mc, mc*queueFactor), market.ServeStartsNow(mc))
}

// connect makes sure a has a connection to b, dialling when needed, then
// calls then.
func (s *sim) connect(a, b int32, then func()) {
	if s.g.o.neighbour(a, b) || s.nodes[a].conns[b] {
		then()
		return
	}
	s.nodes[a].conns[b], s.nodes[b].conns[a] = true, true
	s.net.dial(a, b, then)
}

// take registers an acked award on provider p: it runs at once or queues.
func (s *sim) take(p int32, j *job) {
	n := s.nodes[p]
	n.taken[j.id] = true
	if n.load.Running < s.cfg.MaxConcurrent {
		n.load.Running++
		s.net.at(j.runtime, func() { s.finish(p, j) })
		return
	}
	n.load.Queued++
	n.queued = append(n.queued, j)
}

// release frees a slot of p and starts its next queued job.
func (s *sim) release(p int32) {
	n := s.nodes[p]
	n.load.Running--
	if len(n.queued) > 0 {
		next := n.queued[0]
		n.queued = n.queued[1:]
		n.load.Queued--
		n.load.Running++
		s.net.at(next.runtime, func() { s.finish(p, next) })
	}
}

// cancel withdraws j from p, whether it runs or waits.
func (s *sim) cancel(p int32, j *job) {
	n := s.nodes[p]
	if !n.taken[j.id] {
		return
	}
	delete(n.taken, j.id)
	for i, q := range n.queued {
		if q == j {
			n.queued = append(n.queued[:i], n.queued[i+1:]...)
			n.load.Queued--
			return
		}
	}
	s.release(p)
}
