package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/internal/logging"
	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsub_pb "github.com/libp2p/go-libp2p-pubsub/pb"
	record "github.com/libp2p/go-libp2p-record"
	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	tcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
)

// maxPubSubMessage bounds every gossipsub message; market announcements are
// small, so 1 MiB leaves ample room.
const maxPubSubMessage = 1 << 20

// Params are the inputs of New.
type Params struct {
	// Key is the host's identity.
	Key crypto.PrivKey
	// Config holds the swarm settings.
	Config Config
	// SwarmKey, when set, makes the host part of a private swarm (TCP only).
	SwarmKey SwarmKey
	// RelayService makes the host a circuit relay for others (indexer role).
	RelayService bool
	// Version is appended to the identify agent string.
	Version string
	// Validators check DHT records of the given namespaces (/ns/...).
	Validators map[string]record.Validator
	// ScoredTopics are gossipsub topics whose invalid messages lower their
	// sender's score, until the sender is ignored.
	ScoredTopics []string
	// Logger receives the host's own log lines.
	Logger *slog.Logger
	// ConnectionGater, when set, is asked about every dial and every
	// accepted connection; tests use it to record what a host dials. Not
	// used by Attach.
	ConnectionGater coreconnmgr.ConnectionGater
	// AminoAllowLoopback is for tests only: it turns off the public-address
	// filters of the Amino DHT, so that stub peers on loopback stand in for
	// the public IPFS DHT. No config key sets it.
	AminoAllowLoopback bool
	// Registerer, when set, receives libp2p's own metrics (swarm,
	// resource manager, identify, relay, hole punching, AutoNAT, event
	// bus); nil turns them off. Not used by Attach.
	Registerer prometheus.Registerer
}

// Host is a running libp2p host with its DHT, gossipsub router, optional
// mDNS service and optional rendezvous in the public IPFS DHT. Close stops
// all of them.
type Host struct {
	host.Host
	DHT    *dht.IpfsDHT
	PubSub *pubsub.PubSub
	// Amino is the client of the public IPFS DHT used for the rendezvous
	// (see docs/swarm.md); nil when swarm.amino_bootstrap is empty or the
	// swarm is private. Its peers never enter DHT's routing table.
	Amino *dht.IpfsDHT

	cfg       Config
	log       *slog.Logger
	mdns      mdns.Service
	bandwidth *metrics.BandwidthCounter // nil on a host from Attach
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	topicsMu sync.Mutex
	topics   map[string]*pubsub.Topic

	closeOnce sync.Once
	closeErr  error
}

// New starts a host with the given identity and settings. It listens at
// once; bootstrap dialling happens in the background (see Bootstrap).
func New(p Params) (*Host, error) {
	if p.Key == nil {
		return nil, errors.New("new host: no identity key")
	}
	if err := p.Config.Validate(); err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := p.Config

	listen := cfg.Listen
	if p.SwarmKey != nil {
		listen = nil
		for _, a := range cfg.Listen {
			if isQUIC(a) {
				log.Warn("private swarm: skipping UDP listen address, pre-shared keys work over TCP only", "addr", a)
				continue
			}
			listen = append(listen, a)
		}
		if len(listen) == 0 && len(cfg.Listen) > 0 {
			return nil, errors.New("new host: private swarm needs at least one TCP listen address")
		}
	}

	if err := checkPortsFree(listen); err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}

	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.Scale(cfg.MaxMemoryMiB<<20, cfg.MaxFileDescriptors)
	var rmOpts []rcmgr.Option
	if p.Registerer != nil {
		// libp2p registers the resource manager's collectors with the
		// registerer; the reporter feeds them.
		str, err := rcmgr.NewStatsTraceReporter()
		if err != nil {
			return nil, fmt.Errorf("new host: resource manager metrics: %w", err)
		}
		rmOpts = append(rmOpts, rcmgr.WithTraceReporter(str))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaled), rmOpts...)
	if err != nil {
		return nil, fmt.Errorf("new host: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLowWater, cfg.ConnHighWater,
		connmgr.WithGracePeriod(time.Duration(cfg.ConnGraceSeconds)*time.Second))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("new host: connection manager: %w", err)
	}

	bandwidth := metrics.NewBandwidthCounter()
	opts := []libp2p.Option{
		libp2p.BandwidthReporter(bandwidth),
		libp2p.Identity(p.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(wire.AgentName + "/" + p.Version),
		libp2p.Ping(true),
	}
	if p.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(p.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if p.SwarmKey != nil {
		opts = append(opts, libp2p.PrivateNetwork(p.SwarmKey))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if cfg.RelayClient {
		opts = append(opts, libp2p.EnableRelay())
		relays, err := ParsePeerAddrs(cfg.StaticRelays)
		if err != nil {
			return nil, fmt.Errorf("new host: static_relays: %w", err)
		}
		if len(relays) > 0 {
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays))
		}
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if p.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if p.ConnectionGater != nil {
		opts = append(opts, libp2p.ConnectionGater(p.ConnectionGater))
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.AutoNAT {
		opts = append(opts, libp2p.EnableAutoNATv2(), libp2p.EnableNATService())
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}

	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}
	hst, err := attach(h, p, log)
	if err != nil {
		return nil, err
	}
	hst.bandwidth = bandwidth
	return hst, nil
}

// Attach builds the DHT, gossipsub and mDNS of New on a libp2p host made
// elsewhere, such as a host of an in-memory network in tests. p.Key and
// the swarm settings of p.Config are not used; closing the result closes
// h.
func Attach(h host.Host, p Params) (*Host, error) {
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	return attach(h, p, log)
}

func attach(h host.Host, p Params, log *slog.Logger) (*Host, error) {
	cfg := p.Config
	ctx, cancel := context.WithCancel(context.Background())
	hst := &Host{Host: h, cfg: cfg, log: log, ctx: ctx, cancel: cancel}

	bootstrap, _ := ParsePeerAddrs(cfg.Bootstrap) // validated above
	dhtOpts := []dht.Option{
		dht.ProtocolPrefix(wire.DHTPrefix),
		dht.Mode(dhtMode(cfg.DHTMode)),
		dht.BootstrapPeers(bootstrap...),
	}
	for ns, v := range p.Validators {
		dhtOpts = append(dhtOpts, dht.NamespacedValidator(ns, v))
	}
	kad, err := dht.New(h, dhtOpts...)
	if err != nil {
		hst.Close()
		return nil, fmt.Errorf("new host: dht: %w", err)
	}
	hst.DHT = kad
	// A private swarm keeps to itself: no public DHT at all.
	if len(cfg.AminoBootstrap) > 0 && p.SwarmKey == nil {
		if hst.Amino, err = newAmino(h, p); err != nil {
			hst.Close()
			return nil, fmt.Errorf("new host: amino dht: %w", err)
		}
	}

	psOpts := []pubsub.Option{
		pubsub.WithPeerOutboundQueueSize(cfg.PubSubPeerQueue),
		pubsub.WithValidateQueueSize(cfg.PubSubValidateQueue),
		pubsub.WithMaxMessageSize(maxPubSubMessage),
		// Messages are not signed by pubsub: every CyxWiz message is an
		// envelope signed by its author, which topic validators check, so
		// a second signature would only double the cost of each message.
		// Without pubsub's sender and sequence number, a message's ID is
		// the hash of its content.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(contentMessageID),
		pubsub.WithDiscovery(drouting.NewRoutingDiscovery(kad)),
		// Gossipsub's default logger writes to stderr itself, in its own
		// format; this one follows the daemon's (package logging).
		pubsub.WithLogger(logging.Library("pubsub").With("id", h.ID().String())),
	}
	if len(p.ScoredTopics) > 0 {
		psOpts = append(psOpts, pubsub.WithPeerScore(scoreParams(p.ScoredTopics)))
	}
	ps, err := pubsub.NewGossipSub(ctx, h, psOpts...)
	if err != nil {
		hst.Close()
		return nil, fmt.Errorf("new host: gossipsub: %w", err)
	}
	hst.PubSub = ps

	if cfg.MDNS {
		hst.mdns = mdns.NewMdnsService(h, wire.MDNSService, mdnsNotifee{hst})
		if err := hst.mdns.Start(); err != nil {
			hst.Close()
			return nil, fmt.Errorf("new host: mdns: %w", err)
		}
	}
	return hst, nil
}

// contentMessageID identifies a message by the SHA-256 of its data.
func contentMessageID(m *pubsub_pb.Message) string {
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

// scoreParams penalize invalid messages on the given topics: each one
// lowers the sender's score by 10, decaying by a tenth a second; below -10
// a peer gets no gossip, below -50 its messages are not forwarded, below
// -80 it is ignored altogether.
func scoreParams(topics []string) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	tp := map[string]*pubsub.TopicScoreParams{}
	for _, t := range topics {
		tp[t] = &pubsub.TopicScoreParams{
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			InvalidMessageDeliveriesWeight: -10,
			InvalidMessageDeliveriesDecay:  0.9,
			// Not scored, but the score divides by it.
			TimeInMeshQuantum: time.Second,
		}
	}
	return &pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			Topics:               tp,
			AppSpecificScore:     func(peer.ID) float64 { return 0 },
			DecayInterval:        time.Second,
			DecayToZero:          0.01,
			RetainScore:          10 * time.Minute,
		}, &pubsub.PeerScoreThresholds{
			SkipAtomicValidation: true,
			GossipThreshold:      -10,
			PublishThreshold:     -50,
			GraylistThreshold:    -80,
		}
}

func dhtMode(mode string) dht.ModeOpt {
	switch mode {
	case DHTModeServer:
		return dht.ModeServer
	case DHTModeClient:
		return dht.ModeClient
	default:
		return dht.ModeAutoServer
	}
}

// Bootstrap dials the configured bootstrap peers in the background and then
// bootstraps the DHT; with an Amino DHT it also starts the rendezvous.
// Unreachable peers are logged, never fatal. Call it once.
func (h *Host) Bootstrap() {
	h.startRendezvous()
	peers, _ := ParsePeerAddrs(h.cfg.Bootstrap)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var wg sync.WaitGroup
		for _, pi := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(h.ctx, 15*time.Second)
				defer cancel()
				if err := h.Connect(ctx, pi); err != nil {
					h.log.Warn("bootstrap peer unreachable", "peer", pi.ID, "error", err)
					return
				}
				h.log.Debug("bootstrap peer connected", "peer", pi.ID)
			}()
		}
		wg.Wait()
		if err := h.DHT.Bootstrap(h.ctx); err != nil && h.ctx.Err() == nil {
			h.log.Warn("dht bootstrap failed", "error", err)
		}
	}()
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID        peer.ID
	Addr      string
	Direction string
	Latency   time.Duration
	Agent     string
}

// Peers lists the connected peers, one entry per peer (its first connection).
func (h *Host) Peers() []PeerInfo {
	var out []PeerInfo
	for _, id := range h.Network().Peers() {
		conns := h.Network().ConnsToPeer(id)
		if len(conns) == 0 {
			continue
		}
		c := conns[0]
		info := PeerInfo{
			ID:        id,
			Addr:      c.RemoteMultiaddr().String(),
			Direction: strings.ToLower(c.Stat().Direction.String()),
			Latency:   h.Peerstore().LatencyEWMA(id),
		}
		if v, err := h.Peerstore().Get(id, "AgentVersion"); err == nil {
			info.Agent, _ = v.(string)
		}
		out = append(out, info)
	}
	return out
}

// Disconnect closes every connection to the peer.
func (h *Host) Disconnect(id peer.ID) error {
	if h.Network().Connectedness(id) != network.Connected {
		return fmt.Errorf("disconnect %s: %w", id, ErrNotConnected)
	}
	if err := h.Network().ClosePeer(id); err != nil {
		return fmt.Errorf("disconnect %s: %w", id, err)
	}
	return nil
}

// ErrNotConnected is returned for operations on a peer the host has no connection to.
var ErrNotConnected = errors.New("peer not connected")

// Protocols lists the protocol IDs the host serves.
func (h *Host) Protocols() []protocol.ID { return h.Mux().Protocols() }

// Close stops mDNS, gossipsub, the rendezvous, the DHTs and the host, in
// that order. It is safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.mdns != nil {
			errs = append(errs, h.mdns.Close())
		}
		h.cancel()
		h.wg.Wait()
		if h.Amino != nil {
			errs = append(errs, h.Amino.Close())
		}
		if h.DHT != nil {
			errs = append(errs, h.DHT.Close())
		}
		errs = append(errs, h.Host.Close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

type mdnsNotifee struct{ h *Host }

func (n mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == n.h.ID() || n.h.ctx.Err() != nil {
		return
	}
	n.h.wg.Add(1)
	go func() {
		defer n.h.wg.Done()
		ctx, cancel := context.WithTimeout(n.h.ctx, 10*time.Second)
		defer cancel()
		if err := n.h.Connect(ctx, pi); err != nil {
			n.h.log.Debug("mdns peer unreachable", "peer", pi.ID, "error", err)
		}
	}()
}

// Traffic is what a host has sent and received over all its connections.
type Traffic struct {
	// TotalIn and TotalOut are bytes since the host started.
	TotalIn, TotalOut int64
	// RateIn and RateOut are bytes per second, smoothed over the last
	// seconds.
	RateIn, RateOut float64
}

// Traffic reports the host's traffic; zero for a host from Attach, which
// does not count it.
func (h *Host) Traffic() Traffic {
	if h.bandwidth == nil {
		return Traffic{}
	}
	t := h.bandwidth.GetBandwidthTotals()
	return Traffic{TotalIn: t.TotalIn, TotalOut: t.TotalOut, RateIn: t.RateIn, RateOut: t.RateOut}
}
