package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
)

// TestRendezvousSwarm starts three daemons of the local profile that know
// no CyxWiz peer, only 20 stub peers of the public IPFS DHT: they must
// find each other at the rendezvous, form the /cyxwiz DHT (capacity
// records and all) and run a WASM job, dialling nothing outside loopback
// and keeping the stubs out of the /cyxwiz routing table.
func TestRendezvousSwarm(t *testing.T) {
	amino := p2ptest.StubAmino(t, 20)
	stubs := p2ptest.StubIDs(t, amino)
	guard := &p2ptest.DialGuard{}
	edit := func(p *Params) {
		p.EditHost = func(hp *p2p.Params) {
			hp.AminoAllowLoopback = true
			hp.ConnectionGater = guard
		}
	}
	var nodes []*testNode
	for i := range 3 {
		cfg := testConfig()
		cfg.Swarm.AminoBootstrap = amino
		cfg.Market.Provider = i > 0
		nodes = append(nodes, startNodeEdit(t, cfg, 0, edit))
	}

	deadline := time.Now().Add(20 * time.Second)
	for _, a := range nodes {
		for _, b := range nodes {
			for a != b && a.Host().DHT.RoutingTable().Find(b.Host().ID()) == "" {
				if time.Now().After(deadline) {
					t.Fatalf("%s never added %s to its /cyxwiz routing table", a.Host().ID(), b.Host().ID())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	req := nodes[0].client
	guest, err := os.ReadFile(guestModule(t))
	if err != nil {
		t.Fatal(err)
	}
	module := addFile(t, req, "guest.wasm", guest)
	input := addFile(t, req, "data.txt", []byte("found at the rendezvous\n"))
	waitProviders(t, req, 2)
	job, err := req.JobSubmit(context.Background(), spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, req, job.ID, 30*time.Second)
	if done.State != "succeeded" {
		t.Fatalf("job ended %s: %+v", done.State, done)
	}
	out := filepath.Join(t.TempDir(), "results")
	if _, err := req.JobResult(context.Background(), api.JobResultParams{ID: job.ID, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "result")); string(got) != "found at the rendezvous\n" {
		t.Fatalf("output = %q", got)
	}

	for _, n := range nodes {
		for _, id := range n.Host().DHT.RoutingTable().ListPeers() {
			if stubs[id] {
				t.Errorf("stub Amino peer %s is in the /cyxwiz routing table of %s", id, n.Host().ID())
			}
		}
	}
	if len(guard.Dialed()) == 0 {
		t.Error("the dial guard saw no dial; is it installed?")
	}
	for _, a := range guard.Outside() {
		t.Errorf("a node dialled or accepted %s, outside loopback", a)
	}
}

// TestLocalProfileStaysLocal checks the local profile's settings that keep
// a node's traffic on the machine.
func TestLocalProfileStaysLocal(t *testing.T) {
	s := LocalConfig().Swarm
	if len(s.AminoBootstrap) != 0 || len(s.Bootstrap) != 0 || len(s.StaticRelays) != 0 {
		t.Errorf("local profile peers: amino_bootstrap %v, bootstrap %v, static_relays %v; want none", s.AminoBootstrap, s.Bootstrap, s.StaticRelays)
	}
	if s.MDNS || s.NATPortMap || s.AutoNAT || s.HolePunching {
		t.Errorf("local profile: mdns %v, nat_port_map %v, autonat %v, hole_punching %v; want all off", s.MDNS, s.NATPortMap, s.AutoNAT, s.HolePunching)
	}
	if len(DefaultConfig().Swarm.AminoBootstrap) == 0 {
		t.Error("default profile has no amino_bootstrap: a public node would find no peers")
	}
}
