package p2ptest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	tcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// StubAmino starts n hosts on loopback that serve the public IPFS DHT's
// protocol (/ipfs/kad/1.0.0, kad-dht's defaults) in server mode, all
// connected to each other, and closes them when the test ends. They stand
// in for the public IPFS DHT, as in Kubo's test harness. It returns their
// addresses in the form of swarm.amino_bootstrap; hosts that use them need
// p2p.Params.AminoAllowLoopback.
func StubAmino(t testing.TB, n int) []string {
	t.Helper()
	hosts := make([]host.Host, n)
	for i := range hosts {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.DisableRelay(),
			libp2p.DisableMetrics(),
		)
		if err != nil {
			t.Fatalf("stub amino host: %v", err)
		}
		kad, err := dht.New(h, dht.Mode(dht.ModeServer), dht.AddressFilter(nil))
		if err != nil {
			h.Close()
			t.Fatalf("stub amino dht: %v", err)
		}
		t.Cleanup(func() {
			kad.Close()
			h.Close()
		})
		hosts[i] = h
	}
	// A full mesh, dialled a few at a time and each dial retried: on a
	// loaded machine a burst of handshakes can pass libp2p's own
	// negotiation timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	errs := make(chan error, n*n)
	for i, a := range hosts {
		for _, b := range hosts[:i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				defer func() { <-slots }()
				var err error
				for range 3 {
					if err = a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err == nil {
						return
					}
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("connect stub amino peers: %v", err)
	}
	var out []string
	for _, h := range hosts {
		addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			out = append(out, a.String())
		}
	}
	return out
}

// StubIDs returns the peer IDs of the addresses StubAmino returned.
func StubIDs(t testing.TB, addrs []string) map[peer.ID]bool {
	t.Helper()
	ids := map[peer.ID]bool{}
	for _, a := range addrs {
		info, err := peer.AddrInfoFromString(a)
		if err != nil {
			t.Fatal(err)
		}
		ids[info.ID] = true
	}
	return ids
}
