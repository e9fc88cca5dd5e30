// Package p2ptest builds in-process CyxWiz hosts on loopback for tests.
package p2ptest

import (
	"crypto/rand"
	"log/slog"
	"testing"

	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.New(p2p.Params{Key: key, Config: cfg, SwarmKey: swarmKey, Version: "test", Logger: slog.New(slog.DiscardHandler)})
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
