package p2ptest

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DialGuard is a connection gater (p2p.Params.ConnectionGater) that
// records every address a host considers dialling, DHT lookups' dials
// included, and the remote address of every connection it accepts. It
// refuses any of them outside loopback (127.0.0.0/8, ::1), so a test that
// uses it sends nothing off the machine even when it fails. One guard may
// serve several hosts.
type DialGuard struct {
	mu       sync.Mutex
	dialed   []multiaddr.Multiaddr
	accepted []multiaddr.Multiaddr
}

// InterceptPeerDial allows every peer; the addresses are checked one by one.
func (g *DialGuard) InterceptPeerDial(peer.ID) bool { return true }

// InterceptAddrDial records addr and allows it only on loopback.
func (g *DialGuard) InterceptAddrDial(_ peer.ID, addr multiaddr.Multiaddr) bool {
	g.mu.Lock()
	g.dialed = append(g.dialed, addr)
	g.mu.Unlock()
	return manet.IsIPLoopback(addr)
}

// InterceptAccept records the remote address of an inbound connection and
// allows it only from loopback.
func (g *DialGuard) InterceptAccept(c network.ConnMultiaddrs) bool {
	g.mu.Lock()
	g.accepted = append(g.accepted, c.RemoteMultiaddr())
	g.mu.Unlock()
	return manet.IsIPLoopback(c.RemoteMultiaddr())
}

// InterceptSecured allows every secured connection.
func (g *DialGuard) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

// InterceptUpgraded allows every upgraded connection.
func (g *DialGuard) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// Dialed returns every address considered for a dial so far.
func (g *DialGuard) Dialed() []multiaddr.Multiaddr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]multiaddr.Multiaddr(nil), g.dialed...)
}

// Outside returns the addresses, dialled or accepted, that are not on
// loopback: empty when the hosts kept to the machine.
func (g *DialGuard) Outside() []multiaddr.Multiaddr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []multiaddr.Multiaddr
	for _, a := range append(append([]multiaddr.Multiaddr(nil), g.dialed...), g.accepted...) {
		if !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}
