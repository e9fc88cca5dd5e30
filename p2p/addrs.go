package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// ParsePeerAddrs parses multiaddrs that end in /p2p/ID and merges addresses
// of the same peer.
func ParsePeerAddrs(addrs []string) ([]peer.AddrInfo, error) {
	mas := make([]multiaddr.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		mas = append(mas, ma)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("need multiaddrs ending in /p2p/<peer id>: %w", err)
	}
	return infos, nil
}

// ParsePeerAddr parses one multiaddr that ends in /p2p/ID.
func ParsePeerAddr(addr string) (peer.AddrInfo, error) {
	ma, err := multiaddr.NewMultiaddr(addr)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%q: %w", addr, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%q: need a multiaddr ending in /p2p/<peer id>: %w", addr, err)
	}
	return *info, nil
}
