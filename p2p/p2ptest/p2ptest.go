// Package p2ptest builds in-process CyxWiz hosts on loopback for tests.
package p2ptest

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"
)

// Config returns loopback settings with TCP only, which keeps many-host
// tests light.
func Config() p2p.Config {
	c := p2p.LocalConfig()
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.RelayClient = false
	return c
}

// NewHost starts a host with a fresh key and closes it when the test ends.
func NewHost(t testing.TB, cfg p2p.Config, swarmKey p2p.SwarmKey) *p2p.Host {
	t.Helper()
	return NewHostWith(t, p2p.Params{Config: cfg, SwarmKey: swarmKey})
}

// NewHostWith starts a host with p, filling in a fresh key, a version and
// a silent logger where p has none, and closes it when the test ends.
func NewHostWith(t testing.TB, p p2p.Params) *p2p.Host {
	t.Helper()
	if p.Key == nil {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p.Key = key
	}
	if p.Version == "" {
		p.Version = "test"
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := p2p.New(p)
	if err != nil {
		t.Fatalf("new host: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// AddrInfo returns what another host needs to dial h.
func AddrInfo(h *p2p.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// P2PAddrs returns h's addresses as strings ending in /p2p/ID, the form
// bootstrap lists use.
func P2PAddrs(t testing.TB, h *p2p.Host) []string {
	t.Helper()
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// MockNet builds n hosts on an in-memory network (libp2p's mocknet), all
// linked and connected, with latency on every link, and closes them when
// the test ends. Streams between them are fast and deterministic: no
// sockets, no ports, no dialling races.
func MockNet(t testing.TB, n int, latency time.Duration) []*p2p.Host {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	cfg := Config()
	cfg.DHTMode = p2p.DHTModeServer
	hosts := make([]*p2p.Host, n)
	for i := range hosts {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h, err := mn.AddPeer(key, multiaddr.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i)))
		if err != nil {
			t.Fatal(err)
		}
		if hosts[i], err = p2p.Attach(h, p2p.Params{Config: cfg, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hosts[i].Close() })
	}
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency})
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return hosts
}
