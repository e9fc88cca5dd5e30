package main

import (
	"math/rand/v2"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// gossipParams are gossipsub's parameters as the jobs topic runs them: the
// library's defaults, which p2p.New does not change.
var gossipParams = pubsub.DefaultGossipSubParams()

// overlay is the jobs topic's peer graph: each node's mesh (degree D to
// Dhi, as gossipsub's heartbeat keeps it) and its other topic peers, those
// it gossips IHAVE to and that a publisher floods.
type overlay struct {
	mesh   [][]int32
	others [][]int32
	// phase is each node's heartbeat offset within the interval.
	phase []time.Duration
}

// buildOverlay draws a mesh where every node has at least D and at most
// Dhi peers, and extra topic peers (the node's other connections that
// subscribe) up to extra each.
func buildOverlay(nodes, extra int, rng *rand.Rand) *overlay {
	o := &overlay{mesh: make([][]int32, nodes), others: make([][]int32, nodes), phase: make([]time.Duration, nodes)}
	for i := range nodes {
		o.phase[i] = time.Duration(rng.Int64N(int64(gossipParams.HeartbeatInterval)))
	}
	link(o.mesh, nil, gossipParams.D, gossipParams.Dhi, rng)
	link(o.others, o.mesh, extra, 2*extra, rng)
	return o
}

// link adds edges until every node has want, none more than most, never
// twice and never where avoid already has one.
func link(adj, avoid [][]int32, want, most int, rng *rand.Rand) {
	n := len(adj)
	if n < 2 {
		return
	}
	want = min(want, n-1)
	has := func(g [][]int32, a, b int32) bool {
		if g == nil {
			return false
		}
		for _, x := range g[a] {
			if x == b {
				return true
			}
		}
		return false
	}
	for i := range n {
		for tries := 0; len(adj[i]) < want && tries < 50*want; tries++ {
			j := int32(rng.IntN(n))
			a := int32(i)
			if j == a || len(adj[j]) >= most || has(adj, a, j) || has(avoid, a, j) {
				continue
			}
			adj[a] = append(adj[a], j)
			adj[j] = append(adj[j], a)
		}
	}
}

// neighbour reports whether a and b share a topic connection, mesh or not.
func (o *overlay) neighbour(a, b int32) bool {
	for _, x := range o.mesh[a] {
		if x == b {
			return true
		}
	}
	for _, x := range o.others[a] {
		if x == b {
			return true
		}
	}
	return false
}

// message is one announcement on the topic, as each node holds it.
type message struct {
	author int32
	bytes  int
	// published is when the author sent it.
	published time.Duration
	// seen is when each node first held the message; -1: not yet.
	seen []time.Duration
	// dontWant holds (node, peer) pairs: peer told node it has the
	// message (IDONTWANT), so node does not forward it there.
	dontWant map[[2]int32]bool
	// receive is what a node does with its first copy: validate it and
	// act on it; false rejects it (not forwarded).
	receive func(node int32) bool
}

// gossip runs the topic over the network.
type gossip struct {
	net *network
	o   *overlay
	rng *rand.Rand
	// onFirst is told of each node's first copy, and how long after
	// publishing it came.
	onFirst func(m *message, after time.Duration)
}

// publish sends m from its author to all its topic peers (gossipsub's
// flood publishing, on by default).
func (g *gossip) publish(m *message) {
	m.seen = make([]time.Duration, len(g.o.mesh))
	for i := range m.seen {
		m.seen[i] = -1
	}
	m.dontWant = map[[2]int32]bool{}
	a := m.author
	m.seen[a], m.published = g.net.now, g.net.now
	g.scheduleIHave(m, a)
	for _, p := range g.o.mesh[a] {
		g.forward(m, a, p)
	}
	for _, p := range g.o.others[a] {
		g.forward(m, a, p)
	}
}

// forward carries the message from a to b.
func (g *gossip) forward(m *message, a, b int32) {
	g.net.send("announce", a, b, m.bytes+rpcOverhead, 0, func() { g.arrive(m, a, b) })
}

// arrive handles a copy of m that reached b from a: duplicates are
// dropped by message ID; a first copy is announced with IDONTWANT to the
// mesh (the message is over the threshold), validated, then forwarded to
// the mesh peers that may not have it.
func (g *gossip) arrive(m *message, from, b int32) {
	if m.seen[b] >= 0 {
		return
	}
	m.seen[b] = g.net.now
	if g.onFirst != nil {
		g.onFirst(m, g.net.now-m.published)
	}
	if m.bytes >= gossipParams.IDontWantMessageThreshold {
		for _, p := range g.o.mesh[b] {
			if p != from {
				g.net.send("idontwant", b, p, rpcOverhead+messageIDBytes, 0, func() { m.dontWant[[2]int32{p, b}] = true })
			}
		}
	}
	if !m.receive(b) {
		return
	}
	g.scheduleIHave(m, b)
	for _, p := range g.o.mesh[b] {
		if p == from || p == m.author || m.dontWant[[2]int32{b, p}] {
			continue
		}
		g.forward(m, b, p)
	}
}

// scheduleIHave has node a gossip m's ID at its next HistoryGossip
// heartbeats, each time to Dlazy of its non-mesh topic peers (or
// GossipFactor of them, when that is more).
func (g *gossip) scheduleIHave(m *message, a int32) {
	hb := gossipParams.HeartbeatInterval
	now := g.net.now
	next := g.o.phase[a]
	if now > next {
		next += (now - next + hb - 1) / hb * hb
	}
	for k := range gossipParams.HistoryGossip {
		g.net.at(next-now+time.Duration(k)*hb, func() { g.ihave(m, a) })
	}
}

// ihave sends m's ID to a's chosen gossip peers; a peer without the
// message asks for it (IWANT) and gets it.
func (g *gossip) ihave(m *message, a int32) {
	peers := g.o.others[a]
	target := max(gossipParams.Dlazy, int(gossipParams.GossipFactor*float64(len(peers))))
	order := g.rng.Perm(len(peers))
	for _, k := range order[:min(target, len(peers))] {
		p := peers[k]
		g.net.send("ihave", a, p, rpcOverhead+messageIDBytes, 0, func() {
			if m.seen[p] >= 0 {
				return
			}
			g.net.send("iwant", p, a, rpcOverhead+messageIDBytes, 0, func() {
				g.net.send("announce", a, p, m.bytes+rpcOverhead, 0, func() { g.arrive(m, a, p) })
			})
		})
	}
}
