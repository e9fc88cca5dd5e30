package p2p

import (
	"fmt"
	"net"

	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// checkPortsFree binds and releases every fixed port among the listen
// addresses. libp2p listens with SO_REUSEPORT (it helps hole punching), so a
// second daemon on the same port would otherwise start and silently share
// the port with the first.
func checkPortsFree(listen []string) error {
	for _, s := range listen {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("listen %q: %w", s, err)
		}
		network, addr, err := manet.DialArgs(ma)
		if err != nil {
			continue // not a plain TCP or UDP address (relay, websocket...)
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "0" {
			continue
		}
		switch network {
		case "tcp", "tcp4", "tcp6":
			l, err := net.Listen(network, addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", s, err)
			}
			l.Close()
		case "udp", "udp4", "udp6":
			c, err := net.ListenPacket(network, addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", s, err)
			}
			c.Close()
		}
	}
	return nil
}
