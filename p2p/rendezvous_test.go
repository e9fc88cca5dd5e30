package p2p_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// watchTables samples the /cyxwiz routing tables of hosts until the test
// ends, and fails it if a stub peer of the public DHT ever shows up in one.
func watchTables(t *testing.T, hosts []*p2p.Host, stubs map[peer.ID]bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	check := func() {
		for _, h := range hosts {
			for _, id := range h.DHT.RoutingTable().ListPeers() {
				if stubs[id] {
					t.Errorf("stub Amino peer %s is in the /cyxwiz routing table of %s", id, h.ID())
				}
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				check()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		check()
	})
}

// TestRendezvous starts three hosts that know no /cyxwiz peer, only 20
// stub peers of the public DHT: they must find each other through the
// rendezvous key, form the /cyxwiz DHT and gossip, while neither DHT ever
// holds a peer of the other.
func TestRendezvous(t *testing.T) {
	aminoAddrs := p2ptest.StubAmino(t, 20)
	stubs := p2ptest.StubIDs(t, aminoAddrs)
	guard := &p2ptest.DialGuard{}
	cfg := p2ptest.Config()
	cfg.AminoBootstrap = aminoAddrs
	var hosts []*p2p.Host
	for range 3 {
		h := p2ptest.NewHostWith(t, p2p.Params{Config: cfg, AminoAllowLoopback: true, ConnectionGater: guard})
		if h.Amino == nil {
			t.Fatal("host with amino_bootstrap has no Amino DHT")
		}
		hosts = append(hosts, h)
	}
	watchTables(t, hosts, stubs)
	for _, h := range hosts {
		h.Bootstrap()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range hosts {
		for _, b := range hosts {
			for a != b && a.DHT.RoutingTable().Find(b.ID()) == "" {
				select {
				case <-ctx.Done():
					t.Fatalf("%s never added %s to its /cyxwiz routing table", a.ID(), b.ID())
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	for _, h := range hosts {
		if got := h.DHT.RoutingTable().Size(); got != 2 {
			t.Errorf("%s: /cyxwiz routing table holds %d peers, want 2", h.ID(), got)
		}
		for _, id := range h.Amino.RoutingTable().ListPeers() {
			if !stubs[id] {
				t.Errorf("%s: Amino routing table holds %s, which is no Amino peer", h.ID(), id)
			}
		}
		if h.Amino.RoutingTable().Size() == 0 {
			t.Errorf("%s: empty Amino routing table", h.ID())
		}
	}

	// gossipsub delivers among them.
	const topic = "/cyxwiz/test/rendezvous/1"
	var pub *pubsub.Topic
	var subs []*pubsub.Subscription
	for i, h := range hosts {
		tp, err := h.PubSub.Join(topic)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			pub = tp
			continue
		}
		sub, err := tp.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	for len(pub.ListPeers()) < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("publisher sees %d topic peers, want 2", len(pub.ListPeers()))
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := pub.Publish(ctx, []byte("hello swarm")); err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs {
		m, err := sub.Next(ctx)
		if err != nil || string(m.Data) != "hello swarm" {
			t.Fatalf("host %d: gossip %v, %v; want hello swarm", i+1, m, err)
		}
	}

	for _, a := range guard.Outside() {
		t.Errorf("a host dialled or accepted %s, outside loopback", a)
	}

	// Close stops the rendezvous goroutines it owns.
	for _, h := range hosts {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "p2p.(*rendezvous)") {
		t.Errorf("rendezvous goroutines left after Close:\n%s", stacks)
	}
}

// TestRendezvousNetworksApart checks that nodes of different networks do
// not meet at the rendezvous.
func TestRendezvousNetworksApart(t *testing.T) {
	aminoAddrs := p2ptest.StubAmino(t, 8)
	var hosts []*p2p.Host
	for _, network := range []string{"public", "community-test"} {
		cfg := p2ptest.Config()
		cfg.AminoBootstrap = aminoAddrs
		cfg.Network = network
		h := p2ptest.NewHostWith(t, p2p.Params{Config: cfg, AminoAllowLoopback: true})
		h.Bootstrap()
		hosts = append(hosts, h)
	}
	time.Sleep(3 * time.Second)
	if len(hosts[0].Network().ConnsToPeer(hosts[1].ID())) > 0 {
		t.Error("nodes of different networks met at the rendezvous")
	}
}

func mustAddr(t *testing.T, s string) multiaddr.Multiaddr {
	t.Helper()
	a, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPublicFiltersRefuseLoopback checks that without the test switch
// the Amino DHT keeps loopback peers out of its routing table, as the
// WAN DHT of kad-dht's dual package does.
func TestPublicFiltersRefuseLoopback(t *testing.T) {
	aminoAddrs := p2ptest.StubAmino(t, 4)
	cfg := p2ptest.Config()
	cfg.AminoBootstrap = aminoAddrs
	h := p2ptest.NewHostWith(t, p2p.Params{Config: cfg})
	h.Bootstrap()
	time.Sleep(2 * time.Second)
	if n := h.Amino.RoutingTable().Size(); n != 0 {
		t.Errorf("Amino routing table holds %d loopback peers; want the public filters to refuse them", n)
	}
}

// TestRendezvousPrivateSwarm checks that a private host has no Amino DHT
// and dials none of its bootstrap peers.
func TestRendezvousPrivateSwarm(t *testing.T) {
	aminoAddrs := p2ptest.StubAmino(t, 4)
	stubs := p2ptest.StubIDs(t, aminoAddrs)
	guard := &p2ptest.DialGuard{}
	cfg := p2ptest.Config()
	cfg.AminoBootstrap = aminoAddrs
	h := p2ptest.NewHostWith(t, p2p.Params{Config: cfg, SwarmKey: mustKey(t), AminoAllowLoopback: true, ConnectionGater: guard})
	if h.Amino != nil {
		t.Fatal("private host has an Amino DHT")
	}
	h.Bootstrap()
	time.Sleep(time.Second)
	for _, p := range h.Protocols() {
		if strings.HasPrefix(string(p), "/ipfs/kad") {
			t.Errorf("private host serves %s", p)
		}
	}
	for id := range stubs {
		if len(h.Network().ConnsToPeer(id)) > 0 {
			t.Errorf("private host is connected to Amino peer %s", id)
		}
	}
	if d := guard.Dialed(); len(d) > 0 {
		t.Errorf("private host with no bootstrap peers dialled %v", d)
	}
}

func TestRendezvousConfig(t *testing.T) {
	if got, want := p2p.RendezvousKey("public"), "cyxwiz/swarm/v1/public"; got != want {
		t.Errorf("RendezvousKey(%q) = %q, want %q", "public", got, want)
	}
	def := p2p.DefaultConfig()
	if def.Network != p2p.DefaultNetwork || def.RendezvousPeers < 1 {
		t.Errorf("DefaultConfig network %q, rendezvous_peers %d", def.Network, def.RendezvousPeers)
	}
	var want []string
	for _, a := range dht.DefaultBootstrapPeers {
		want = append(want, a.String())
	}
	if len(want) == 0 || !slices.Equal(def.AminoBootstrap, want) {
		t.Errorf("DefaultConfig amino_bootstrap = %v, want kad-dht's %v", def.AminoBootstrap, want)
	}
	local := p2p.LocalConfig()
	if len(local.AminoBootstrap) != 0 || len(local.Bootstrap) != 0 || len(local.StaticRelays) != 0 {
		t.Errorf("LocalConfig peers: amino_bootstrap %v, bootstrap %v, static_relays %v; want none", local.AminoBootstrap, local.Bootstrap, local.StaticRelays)
	}
	if local.MDNS || local.NATPortMap || local.AutoNAT || local.HolePunching {
		t.Errorf("LocalConfig: mdns %v, nat_port_map %v, autonat %v, hole_punching %v; want all off", local.MDNS, local.NATPortMap, local.AutoNAT, local.HolePunching)
	}
	for _, a := range local.Listen {
		if !manet.IsIPLoopback(mustAddr(t, a)) {
			t.Errorf("LocalConfig listens on %s, outside loopback", a)
		}
	}
}

// TestDialGuard checks the guard the loopback tests rely on: it records a
// dial outside loopback and refuses it, so nothing leaves the machine.
func TestDialGuard(t *testing.T) {
	guard := &p2ptest.DialGuard{}
	h := p2ptest.NewHostWith(t, p2p.Params{Config: p2ptest.Config(), ConnectionGater: guard})
	other := p2ptest.NewHost(t, p2ptest.Config(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Connect(ctx, p2ptest.AddrInfo(other)); err != nil {
		t.Fatalf("loopback dial refused: %v", err)
	}
	far := peer.AddrInfo{ID: p2ptest.NewHost(t, p2ptest.Config(), nil).ID(), Addrs: []multiaddr.Multiaddr{mustAddr(t, "/ip4/192.0.2.1/tcp/4001")}}
	if err := h.Connect(ctx, far); err == nil {
		t.Fatal("dial to 192.0.2.1 allowed")
	}
	if out := guard.Outside(); len(out) != 1 || out[0].String() != "/ip4/192.0.2.1/tcp/4001" {
		t.Errorf("Outside() = %v, want [/ip4/192.0.2.1/tcp/4001]", out)
	}
}
