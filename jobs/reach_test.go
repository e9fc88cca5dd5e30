package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestReachableAfterRestart: a requester that knows nothing of a running
// job's provider in its peerstore (as after a restart) reaches it at the
// addresses kept with the job, else through the DHT; a provider that is
// really gone is unreachable.
func TestReachableAfterRestart(t *testing.T) {
	ctx := context.Background()
	boot := p2ptest.NewHost(t, p2ptest.Config(), nil)
	cfg := p2ptest.Config()
	cfg.Bootstrap = p2ptest.P2PAddrs(t, boot)
	prov := p2ptest.NewHost(t, cfg, nil)
	req := p2ptest.NewHost(t, cfg, nil)
	for _, h := range []interface {
		Connect(context.Context, peer.AddrInfo) error
	}{prov, req} {
		if err := h.Connect(ctx, p2ptest.AddrInfo(boot)); err != nil {
			t.Fatal(err)
		}
	}
	rq := newRequester(&core{p: Params{Host: req}}, nil)
	forget := func() {
		req.Network().ClosePeer(prov.ID())
		req.Peerstore().ClearAddrs(prov.ID())
	}
	var addrs []string
	for _, a := range prov.Addrs() {
		addrs = append(addrs, a.String())
	}

	forget()
	if !rq.reachable(ctx, &Job{Provider: prov.ID().String(), ProviderAddrs: addrs}) {
		t.Error("the provider was not reached at the addresses kept with the job")
	}
	forget()
	found := false
	for range 20 { // the DHT's routing tables fill in the background
		if rq.reachable(ctx, &Job{Provider: prov.ID().String()}) {
			found = true
			break
		}
		forget()
		time.Sleep(250 * time.Millisecond)
	}
	if !found {
		t.Error("the provider was not found through the DHT")
	}
	prov.Close()
	forget()
	if rq.reachable(ctx, &Job{Provider: prov.ID().String(), ProviderAddrs: addrs}) {
		t.Error("a provider that is gone was reachable")
	}
}
