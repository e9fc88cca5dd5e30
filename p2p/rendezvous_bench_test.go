package p2p_test

import (
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/network"
)

// firstPeer starts a host whose only way into the swarm is the Amino
// rendezvous (cfg's amino_bootstrap), and waits until it is connected to
// target; it returns how long that took and the host, still open.
func firstPeer(b *testing.B, cfg p2p.Config, target *p2p.Host, limit time.Duration) (time.Duration, *p2p.Host) {
	b.Helper()
	start := time.Now()
	h := p2ptest.NewHostWith(b, p2p.Params{Config: cfg, AminoAllowLoopback: true})
	h.Bootstrap()
	for h.Network().Connectedness(target.ID()) != network.Connected {
		if time.Since(start) > limit {
			b.Fatalf("no connection to the advertising host after %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start), h
}

// BenchmarkFirstPeerThroughAmino measures how long a new node takes to
// find its first CyxWiz peer when it knows only stub peers of the public
// IPFS DHT: from starting its host until it is connected to the one node
// advertised at the rendezvous. The stubs and the advertising node are set
// up outside the timer, and a first node finds it before timing starts
// (so that its advertisement is in place).
func BenchmarkFirstPeerThroughAmino(b *testing.B) {
	stubs := p2ptest.StubAmino(b, 8)
	cfg := p2ptest.Config()
	cfg.AminoBootstrap = stubs
	adv := p2ptest.NewHostWith(b, p2p.Params{Config: cfg, AminoAllowLoopback: true})
	adv.Bootstrap()
	_, warm := firstPeer(b, cfg, adv, time.Minute)
	warm.Close()

	b.ResetTimer()
	var total time.Duration
	for range b.N {
		d, h := firstPeer(b, cfg, adv, 30*time.Second)
		total += d
		b.StopTimer()
		h.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/op")
}
