package p2p

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/multiformats/go-multiaddr"
)

// DHT modes accepted by Config.DHTMode.
const (
	DHTModeAuto   = "auto"
	DHTModeServer = "server"
	DHTModeClient = "client"
)

// Config holds the swarm settings of one host. The zero value is not
// useful; start from DefaultConfig.
type Config struct {
	// Listen is the list of multiaddrs the host listens on. Port 0 picks a free port.
	Listen []string `json:"listen"`
	// Bootstrap is the list of peers (multiaddrs with /p2p/ID) dialled at start-up.
	Bootstrap []string `json:"bootstrap"`
	// StaticRelays are relay peers (multiaddrs with /p2p/ID) the host may reserve
	// a slot on when it is not publicly reachable.
	StaticRelays []string `json:"static_relays"`

	// ConnLowWater and ConnHighWater bound the connection manager: above
	// high water it trims connections down to low water.
	ConnLowWater  int `json:"conn_low_water"`
	ConnHighWater int `json:"conn_high_water"`
	// ConnGraceSeconds protects new connections from trimming for this long.
	ConnGraceSeconds int `json:"conn_grace_seconds"`

	// MaxMemoryMiB and MaxFileDescriptors size the resource manager's limits.
	MaxMemoryMiB       int64 `json:"max_memory_mib"`
	MaxFileDescriptors int   `json:"max_file_descriptors"`

	// DHTMode is auto, server or client.
	DHTMode string `json:"dht_mode"`
	// MDNS turns on LAN discovery.
	MDNS bool `json:"mdns"`
	// RelayClient lets the host dial and listen through circuit relays.
	RelayClient bool `json:"relay_client"`
	// HolePunching turns on direct connection upgrades through relays.
	HolePunching bool `json:"hole_punching"`
	// AutoNAT turns on AutoNAT v2 reachability checks and serves them to others.
	AutoNAT bool `json:"autonat"`
	// NATPortMap asks the gateway for a port mapping (UPnP / NAT-PMP).
	NATPortMap bool `json:"nat_port_map"`

	// PubSubPeerQueue is gossipsub's outbound queue per peer.
	PubSubPeerQueue int `json:"pubsub_peer_queue"`
	// PubSubValidateQueue is gossipsub's validation queue.
	PubSubValidateQueue int `json:"pubsub_validate_queue"`

	// Network names the swarm this node meets others in: the rendezvous
	// key in the public IPFS DHT is cyxwiz/swarm/v1/<network>.
	Network string `json:"network"`
	// AminoBootstrap lists bootstrap peers (multiaddrs with /p2p/ID) of
	// the public IPFS DHT, used only to find other CyxWiz nodes. An empty
	// list turns that rendezvous off.
	AminoBootstrap []string `json:"amino_bootstrap"`
	// RendezvousPeers: while the node has fewer CyxWiz peers than this, it
	// looks for more at the rendezvous every few minutes; 0 looks only at
	// start-up.
	RendezvousPeers int `json:"rendezvous_peers"`
}

// DefaultNetwork is the name of the public swarm.
const DefaultNetwork = "public"

// maxRendezvousPeers bounds Config.RendezvousPeers.
const maxRendezvousPeers = 1000

// networkName is what Config.Network may hold.
var networkName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// defaultAminoBootstrap returns kad-dht's bootstrap peers of the public
// IPFS DHT.
func defaultAminoBootstrap() []string {
	out := make([]string, 0, len(dht.DefaultBootstrapPeers))
	for _, a := range dht.DefaultBootstrapPeers {
		out = append(out, a.String())
	}
	return out
}

// DefaultConfig returns the settings for a public node.
func DefaultConfig() Config {
	return Config{
		Listen: []string{
			"/ip4/0.0.0.0/tcp/4250",
			"/ip4/0.0.0.0/udp/4250/quic-v1",
			"/ip6/::/tcp/4250",
			"/ip6/::/udp/4250/quic-v1",
		},
		Bootstrap:           []string{},
		StaticRelays:        []string{},
		ConnLowWater:        100,
		ConnHighWater:       400,
		ConnGraceSeconds:    20,
		MaxMemoryMiB:        512,
		MaxFileDescriptors:  4096,
		DHTMode:             DHTModeAuto,
		MDNS:                true,
		RelayClient:         true,
		HolePunching:        true,
		AutoNAT:             true,
		NATPortMap:          true,
		PubSubPeerQueue:     256,
		PubSubValidateQueue: 256,
		Network:             DefaultNetwork,
		AminoBootstrap:      defaultAminoBootstrap(),
		RendezvousPeers:     8,
	}
}

// LocalConfig returns settings for a node that stays on loopback: tests,
// benchmarks and local devnets. It sends no traffic off the machine.
func LocalConfig() Config {
	c := DefaultConfig()
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.DHTMode = DHTModeServer
	c.MDNS = false
	c.NATPortMap = false
	c.AutoNAT = false
	c.HolePunching = false
	c.AminoBootstrap = []string{}
	return c
}

// Validate reports every setting that cannot work, each naming its key.
func (c Config) Validate() error {
	var errs []error
	for _, a := range c.Listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q: %w", a, err))
		}
	}
	for _, list := range []struct {
		key   string
		addrs []string
	}{{"bootstrap", c.Bootstrap}, {"static_relays", c.StaticRelays}, {"amino_bootstrap", c.AminoBootstrap}} {
		if _, err := ParsePeerAddrs(list.addrs); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", list.key, err))
		}
	}
	if c.ConnLowWater < 0 || c.ConnHighWater < 1 || c.ConnLowWater > c.ConnHighWater {
		errs = append(errs, fmt.Errorf("conn_low_water: %d must be between 0 and conn_high_water (%d), which must be at least 1", c.ConnLowWater, c.ConnHighWater))
	}
	if c.ConnGraceSeconds < 0 {
		errs = append(errs, fmt.Errorf("conn_grace_seconds: %d is negative", c.ConnGraceSeconds))
	}
	if c.MaxMemoryMiB < 64 {
		errs = append(errs, fmt.Errorf("max_memory_mib: %d is below the minimum of 64", c.MaxMemoryMiB))
	}
	if c.MaxFileDescriptors < 64 {
		errs = append(errs, fmt.Errorf("max_file_descriptors: %d is below the minimum of 64", c.MaxFileDescriptors))
	}
	switch c.DHTMode {
	case DHTModeAuto, DHTModeServer, DHTModeClient:
	default:
		errs = append(errs, fmt.Errorf("dht_mode: %q is not one of auto, server, client", c.DHTMode))
	}
	if c.PubSubPeerQueue < 1 {
		errs = append(errs, fmt.Errorf("pubsub_peer_queue: %d must be positive", c.PubSubPeerQueue))
	}
	if c.PubSubValidateQueue < 1 {
		errs = append(errs, fmt.Errorf("pubsub_validate_queue: %d must be positive", c.PubSubValidateQueue))
	}
	if !networkName.MatchString(c.Network) {
		errs = append(errs, fmt.Errorf("network: %q must be 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", c.Network))
	}
	if c.RendezvousPeers < 0 || c.RendezvousPeers > maxRendezvousPeers {
		errs = append(errs, fmt.Errorf("rendezvous_peers: %d is outside 0..%d", c.RendezvousPeers, maxRendezvousPeers))
	}
	return errors.Join(errs...)
}

// isQUIC reports whether a listen address uses a UDP-based transport that a
// private network cannot protect.
func isQUIC(addr string) bool {
	return strings.Contains(addr, "/quic") || strings.Contains(addr, "/webtransport") || strings.Contains(addr, "/webrtc")
}
