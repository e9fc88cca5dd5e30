package main

import (
	"container/heap"
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// Modelled transport costs. libp2p carries every message, gossip included,
// over a reliable stream (QUIC or TCP), so a lost packet is sent again
// after a retransmission timeout rather than lost for good: the 1 % loss
// shows as delay, and as a failure only when the retransmissions run past
// the caller's deadline.
const (
	// minRTO is the least retransmission timeout (Linux TCP's floor; QUIC's
	// probe timeout is of the same order on these round trips).
	minRTO = 200 * time.Millisecond
	// maxRetransmits bounds the retransmissions of one message.
	maxRetransmits = 8
	// dialBytes is what a new QUIC connection costs both ways: the
	// client's padded Initial, the server's certificate flight and the
	// identify exchange that follows.
	dialBytes = 1300 + 3000 + 2*800
	// dialMessages counts those flights (Initial, server flight, identify
	// both ways).
	dialMessages = 4
	// rpcOverhead is the protobuf framing of a gossipsub RPC around a
	// message or a control entry.
	rpcOverhead = 40
	// messageIDBytes is the size of a message ID (SHA-256 of the data, the
	// jobs topic's message ID function).
	messageIDBytes = 32
)

// event is one thing that happens at a moment of virtual time.
type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// queue orders events by time, then by the order they were scheduled, so
// that a run is deterministic.
type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// counter is what one node sent and received.
type counter struct {
	sent, recv           int64
	bytesSent, bytesRecv int64
}

// network is the virtual clock, the event queue and the link model: a
// round trip per pair of nodes drawn once from [rttMin, rttMax], and a
// loss rate per transmission.
type network struct {
	now    time.Duration
	seq    uint64
	q      queue
	events int64
	rttMin time.Duration
	rttMax time.Duration
	loss   float64
	seed   uint64
	rng    *rand.Rand
	counts []counter
	// byKind counts messages (sent plus received) per kind of message.
	byKind map[string]int64
	// bytesByKind counts bytes (sent plus received) per kind of message.
	bytesByKind map[string]int64
}

func newNetwork(nodes int, rttMin, rttMax time.Duration, loss float64, seed uint64) *network {
	return &network{rttMin: rttMin, rttMax: rttMax, loss: loss, seed: seed,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), counts: make([]counter, nodes),
		byKind: map[string]int64{}, bytesByKind: map[string]int64{}}
}

// at schedules fn after d of virtual time.
func (n *network) at(d time.Duration, fn func()) {
	n.seq++
	heap.Push(&n.q, event{at: n.now + d, seq: n.seq, fn: fn})
}

// run processes events until none are left, the clock passes horizon, or
// maxEvents have run; it reports whether the queue emptied.
func (n *network) run(horizon time.Duration, maxEvents int64) bool {
	for n.q.Len() > 0 {
		if n.events >= maxEvents {
			return false
		}
		e := heap.Pop(&n.q).(event)
		if e.at > horizon {
			return false
		}
		n.now = e.at
		n.events++
		e.fn()
	}
	return true
}

// rtt is the round trip between a and b: the same both ways and for the
// whole run, drawn uniformly from [rttMin, rttMax] by a hash of the pair,
// so that no table of N² links is kept.
func (n *network) rtt(a, b int32) time.Duration {
	if a > b {
		a, b = b, a
	}
	h := fnv.New64a()
	var buf [16]byte
	for i := range 8 {
		buf[i] = byte(uint64(a) >> (8 * i))
		buf[8+i] = byte((uint64(b) ^ n.seed) >> (8 * i))
	}
	h.Write(buf[:])
	f := float64(h.Sum64()>>11) / float64(1<<53)
	return n.rttMin + time.Duration(f*float64(n.rttMax-n.rttMin))
}

// send carries one message of size bytes from a to b and calls deliver on
// arrival, unless its retransmissions run past deadline (0: none), in
// which case it is lost. It counts each transmission as a message sent
// and the arrival as one received.
func (n *network) send(kind string, a, b int32, bytes int, deadline time.Duration, deliver func()) {
	rtt := n.rtt(a, b)
	delay := rtt / 2
	rto := max(minRTO, rtt+rtt/2)
	tx := 1
	for n.rng.Float64() < n.loss && tx <= maxRetransmits {
		delay += rto
		rto *= 2
		tx++
	}
	n.counts[a].sent += int64(tx)
	n.counts[a].bytesSent += int64(tx * bytes)
	n.byKind[kind] += int64(tx)
	n.bytesByKind[kind] += int64(tx * bytes)
	if tx > maxRetransmits || (deadline > 0 && delay > deadline) {
		return
	}
	n.at(delay, func() {
		n.counts[b].recv++
		n.counts[b].bytesRecv += int64(bytes)
		n.byKind[kind]++
		n.bytesByKind[kind] += int64(bytes)
		deliver()
	})
}

// dial counts a new connection from a to b and calls done once it is up,
// one round trip later (QUIC's handshake).
func (n *network) dial(a, b int32, done func()) {
	rtt := n.rtt(a, b)
	half := int64(dialMessages / 2)
	n.counts[a].sent += half
	n.counts[a].recv += half
	n.counts[b].sent += half
	n.counts[b].recv += half
	n.counts[a].bytesSent += dialBytes / 2
	n.counts[a].bytesRecv += dialBytes / 2
	n.counts[b].bytesSent += dialBytes / 2
	n.counts[b].bytesRecv += dialBytes / 2
	n.byKind["dial"] += 2 * dialMessages
	n.bytesByKind["dial"] += 2 * dialBytes
	n.at(rtt, done)
}
