package p2p_test

import (
	"context"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestDHTDiscovery starts 12 hosts that know only one bootstrap peer; each
// must find every other one through the DHT and connect to it.
func TestDHTDiscovery(t *testing.T) {
	if testing.Short() {
		t.Skip("many hosts")
	}
	const n = 12
	boot := p2ptest.NewHost(t, p2ptest.Config(), nil)
	cfg := p2ptest.Config()
	cfg.Bootstrap = p2ptest.P2PAddrs(t, boot)
	hosts := []*p2p.Host{boot}
	for range n - 1 {
		h := p2ptest.NewHost(t, cfg, nil)
		h.Bootstrap()
		hosts = append(hosts, h)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Wait until each host has the bootstrap peer in its routing table.
	for _, h := range hosts[1:] {
		for h.DHT.RoutingTable().Find(boot.ID()) == "" {
			select {
			case <-ctx.Done():
				t.Fatalf("host %s never added the bootstrap peer to its routing table", h.ID())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, n*n)
	for _, a := range hosts[1:] {
		for _, b := range hosts[1:] {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				info, err := a.DHT.FindPeer(ctx, b.ID())
				if err != nil {
					errs <- err
					return
				}
				if err := a.Connect(ctx, info); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("find and connect: %v", err)
	}
	for _, h := range hosts {
		if got := len(h.Network().Peers()); got != n-1 {
			t.Errorf("host %s has %d peers, want %d", h.ID(), got, n-1)
		}
		for _, p := range h.Protocols() {
			if strings.HasPrefix(string(p), "/ipfs/kad") {
				t.Errorf("host serves the IPFS DHT protocol %s; want only %s", p, wire.DHTPrefix)
			}
		}
	}
	if !serves(boot, protocol.ID(string(wire.DHTPrefix)+"/kad/1.0.0")) {
		t.Errorf("bootstrap host does not serve %s/kad/1.0.0: %v", wire.DHTPrefix, boot.Protocols())
	}
}

func serves(h *p2p.Host, id protocol.ID) bool {
	for _, p := range h.Protocols() {
		if p == id {
			return true
		}
	}
	return false
}

// TestPrivateSwarm checks that a swarm key isolates its hosts: members
// connect, outsiders (with no key or another key) cannot, in either direction.
func TestPrivateSwarm(t *testing.T) {
	keyA := mustKey(t)
	keyB := mustKey(t)
	cfg := p2ptest.Config()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

	m1 := p2ptest.NewHost(t, cfg, keyA)
	m2 := p2ptest.NewHost(t, cfg, keyA)
	public := p2ptest.NewHost(t, cfg, nil)
	other := p2ptest.NewHost(t, cfg, keyB)

	for _, a := range m1.Addrs() {
		if strings.Contains(a.String(), "quic") {
			t.Errorf("private host listens on %s; pre-shared keys need TCP only", a)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m2.Connect(ctx, p2ptest.AddrInfo(m1)); err != nil {
		t.Fatalf("members of the same swarm cannot connect: %v", err)
	}
	tests := []struct {
		name     string
		from, to *p2p.Host
	}{
		{"public to private", public, m1},
		{"private to public", m1, public},
		{"other key to private", other, m1},
		{"private to other key", m1, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			tt.from.Peerstore().ClearAddrs(tt.to.ID())
			if err := tt.from.Connect(cctx, peer.AddrInfo{ID: tt.to.ID(), Addrs: tt.to.Addrs()}); err == nil {
				t.Fatalf("connected across swarm boundaries")
			}
			if tt.from.Network().Connectedness(tt.to.ID()) == 1 {
				t.Fatalf("a connection exists across swarm boundaries")
			}
		})
	}
}

func mustKey(t *testing.T) p2p.SwarmKey {
	t.Helper()
	data, err := p2p.GenerateSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := p2p.ParseSwarmKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestSwarmKeyParse(t *testing.T) {
	data, err := p2p.GenerateSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2p.ParseSwarmKey(data); err != nil {
		t.Fatalf("ParseSwarmKey(generated) = %v", err)
	}
	for _, bad := range []string{"", "garbage", "/key/swarm/psk/1.0.0/\n/base16/\nzz\n", "/key/swarm/psk/1.0.0/\n/base16/\nabcd\n"} {
		if _, err := p2p.ParseSwarmKey([]byte(bad)); err == nil {
			t.Errorf("ParseSwarmKey(%q) = nil error, want one", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*p2p.Config)
		wantKey string
	}{
		{"bad listen", func(c *p2p.Config) { c.Listen = []string{"not-an-addr"} }, "listen"},
		{"bootstrap without peer id", func(c *p2p.Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1"} }, "bootstrap"},
		{"low above high", func(c *p2p.Config) { c.ConnLowWater, c.ConnHighWater = 10, 5 }, "conn_low_water"},
		{"dht mode", func(c *p2p.Config) { c.DHTMode = "sometimes" }, "dht_mode"},
		{"memory", func(c *p2p.Config) { c.MaxMemoryMiB = 1 }, "max_memory_mib"},
		{"queues", func(c *p2p.Config) { c.PubSubPeerQueue = 0 }, "pubsub_peer_queue"},
		{"amino bootstrap without peer id", func(c *p2p.Config) { c.AminoBootstrap = []string{"/ip4/127.0.0.1/tcp/1"} }, "amino_bootstrap"},
		{"empty network", func(c *p2p.Config) { c.Network = "" }, "network"},
		{"network with a slash", func(c *p2p.Config) { c.Network = "a/b" }, "network"},
		{"rendezvous peers", func(c *p2p.Config) { c.RendezvousPeers = -1 }, "rendezvous_peers"},
	}
	for _, tt := range tests {
		c := p2p.DefaultConfig()
		tt.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tt.name, err, tt.wantKey)
		}
	}
	if err := p2p.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestPortInUse(t *testing.T) {
	h := p2ptest.NewHost(t, p2ptest.Config(), nil)
	cfg := p2ptest.Config()
	cfg.Listen = []string{h.Addrs()[0].String()}
	_, err := p2p.New(p2p.Params{Key: mustIdentity(t), Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New on a used port = %v, want 'address already in use'", err)
	}
}
