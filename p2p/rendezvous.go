package p2p

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/wire"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Bounds of the rendezvous in the public IPFS DHT (Amino).
const (
	// rendezvousFirstRetry is the wait after the first lookup while the
	// node has too few peers; it doubles after each lookup, up to
	// rendezvousMaxInterval.
	rendezvousFirstRetry  = 5 * time.Second
	rendezvousMaxInterval = 5 * time.Minute
	// rendezvousLookupTimeout bounds one lookup, dials included.
	rendezvousLookupTimeout = 2 * time.Minute
	// rendezvousMaxFound is the most providers one lookup asks for
	// (discovery's own default).
	rendezvousMaxFound = 100
	// rendezvousMaxDials is the most peers one lookup dials, at most
	// rendezvousDialParallel at once, each for rendezvousDialTimeout.
	rendezvousMaxDials     = 32
	rendezvousDialParallel = 8
	rendezvousDialTimeout  = 15 * time.Second
	// rendezvousAdvertiseRetry is the wait after a failed advertisement,
	// as in go-libp2p's discovery util.Advertise.
	rendezvousAdvertiseRetry = 2 * time.Minute
	// rendezvousReachCheck is how often an unreachable node checks again
	// whether it can advertise.
	rendezvousReachCheck = time.Minute
	// aminoPoll is how often the rendezvous checks, at start, whether the
	// Amino DHT has peers yet.
	aminoPoll = 250 * time.Millisecond
)

// RendezvousKey returns the key under which the nodes of a network
// advertise themselves in the public IPFS DHT.
func RendezvousKey(network string) string { return wire.RendezvousPrefix + network }

// newAmino builds a client of the public IPFS DHT (/ipfs/kad/1.0.0) on h,
// beside the /cyxwiz DHT, used only for the rendezvous. Client mode: the
// node never answers Amino queries nor stores Amino records for others.
// Like the WAN half of kad-dht's dual DHT, it queries, keeps in its
// routing table and stores addresses of public peers only, unless
// p.AminoAllowLoopback (tests) turns those filters off.
func newAmino(h host.Host, p Params) (*dht.IpfsDHT, error) {
	peers, err := ParsePeerAddrs(p.Config.AminoBootstrap)
	if err != nil {
		return nil, err
	}
	opts := []dht.Option{
		dht.Mode(dht.ModeClient),
		dht.BootstrapPeers(peers...),
		dht.Datastore(dssync.MutexWrap(ds.NewMapDatastore())),
	}
	if !p.AminoAllowLoopback {
		opts = append(opts,
			dht.QueryFilter(dht.PublicQueryFilter),
			dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
			dht.RoutingTablePeerDiversityFilter(dht.NewRTPeerDiversityFilter(h, amino.DefaultMaxPeersPerIPGroupPerCpl, amino.DefaultMaxPeersPerIPGroup)),
			dht.AddressFilter(func(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
				return multiaddr.FilterAddrs(addrs, manet.IsPublicAddr)
			}),
		)
	}
	return dht.New(h, opts...)
}

// rendezvous advertises the node under its network's key in the Amino
// DHT and looks the key up to find other nodes, whose connections then
// seed the /cyxwiz DHT and gossipsub. Its goroutines belong to the host.
type rendezvous struct {
	h     *Host
	disc  *drouting.RoutingDiscovery
	key   string
	reach atomic.Int32  // network.Reachability, from the event bus
	wake  chan struct{} // reachability changed
}

// startRendezvous starts the rendezvous loops when the host has an Amino
// DHT; it runs until the host closes.
func (h *Host) startRendezvous() {
	if h.Amino == nil {
		return
	}
	r := &rendezvous{
		h:    h,
		disc: drouting.NewRoutingDiscovery(h.Amino),
		key:  RendezvousKey(h.cfg.Network),
		wake: make(chan struct{}, 1),
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		h.log.Warn("rendezvous: no reachability events", "error", err)
	} else {
		h.wg.Add(1)
		go r.watchReachability(sub)
	}
	h.wg.Add(1)
	go r.run()
}

// watchReachability records the host's reachability as AutoNAT finds it.
func (r *rendezvous) watchReachability(sub event.Subscription) {
	defer r.h.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-r.h.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if ev, ok := e.(event.EvtLocalReachabilityChanged); ok {
				r.reach.Store(int32(ev.Reachability))
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// run waits for the Amino DHT to have peers, advertises once (so that
// nodes starting together tend to find each other in their first
// lookup), then keeps the advertisement alive in its own goroutine and
// looks up.
func (r *rendezvous) run() {
	defer r.h.wg.Done()
	if !r.waitAmino() {
		return
	}
	r.h.log.Info("rendezvous: joined the public DHT", "key", r.key, "amino_peers", r.h.Amino.RoutingTable().Size())
	wait := r.advertise()
	r.h.wg.Add(1)
	go r.advertiseLoop(wait)
	r.lookupLoop()
}

// waitAmino waits until the Amino routing table has a peer; false when
// the host closes first.
func (r *rendezvous) waitAmino() bool {
	tick := time.NewTicker(aminoPoll)
	defer tick.Stop()
	warnAt := time.Now().Add(time.Minute)
	for r.h.Amino.RoutingTable().Size() == 0 {
		if !warnAt.IsZero() && time.Now().After(warnAt) {
			r.h.log.Warn("rendezvous: no peer of the public DHT yet; check swarm.amino_bootstrap")
			warnAt = time.Time{}
		}
		select {
		case <-r.h.ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// reachable reports whether others can dial this node, so that an
// advertisement of it is worth making: its /cyxwiz DHT is forced to
// server mode (the operator says it is reachable), AutoNAT found it
// publicly reachable, or it has a relayed address.
func (r *rendezvous) reachable() bool {
	if r.h.cfg.DHTMode == DHTModeServer || network.Reachability(r.reach.Load()) == network.ReachabilityPublic {
		return true
	}
	for _, a := range r.h.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			return true
		}
	}
	return false
}

// advertiseLoop keeps the node's advertisement under the key alive while
// the node is reachable, on the schedule of go-libp2p's discovery
// util.Advertise (again at 7/8 of the TTL, 2 minutes after a failure),
// starting after wait. It is written out here rather than called so that
// the host owns, and Close joins, the goroutine; it also checks
// reachability before each advertisement.
func (r *rendezvous) advertiseLoop(wait time.Duration) {
	defer r.h.wg.Done()
	for sleep(r.h.ctx, wait, r.wake) {
		wait = r.advertise()
	}
}

// advertise advertises the node once if it is reachable, and returns how
// long to wait before the next attempt.
func (r *rendezvous) advertise() time.Duration {
	if !r.reachable() {
		return rendezvousReachCheck
	}
	ttl, err := r.disc.Advertise(r.h.ctx, r.key)
	if err != nil {
		if r.h.ctx.Err() == nil {
			r.h.log.Debug("rendezvous: advertise failed", "key", r.key, "error", err)
		}
		return rendezvousAdvertiseRetry
	}
	r.h.log.Debug("rendezvous: advertised", "key", r.key, "ttl", ttl)
	return 7 * ttl / 8
}

// lookupLoop looks the key up at start, then again while the node has
// fewer CyxWiz peers than swarm.rendezvous_peers: after 5 s, then at
// doubling intervals up to 5 minutes.
func (r *rendezvous) lookupLoop() {
	ctx := r.h.ctx
	want := r.h.cfg.RendezvousPeers
	delay := rendezvousFirstRetry
	for first := true; ; first = false {
		wait := rendezvousMaxInterval
		if first || r.h.cyxwizPeers() < want {
			r.lookup()
			wait = delay
			delay = min(2*delay, rendezvousMaxInterval)
		}
		if want == 0 || !sleep(ctx, wait, nil) {
			return
		}
	}
}

// lookup finds the nodes advertised under the key and dials those the
// host is not connected to, a bounded number at a time.
func (r *rendezvous) lookup() {
	ctx, cancel := context.WithTimeout(r.h.ctx, rendezvousLookupTimeout)
	defer cancel()
	found, err := r.disc.FindPeers(ctx, r.key, discovery.Limit(rendezvousMaxFound))
	if err != nil {
		r.h.log.Debug("rendezvous: lookup failed", "key", r.key, "error", err)
		return
	}
	var (
		wg        sync.WaitGroup
		slots     = make(chan struct{}, rendezvousDialParallel)
		seen      int
		dialed    int
		connected atomic.Int32
	)
	for pi := range found {
		seen++
		if pi.ID == r.h.ID() || len(pi.Addrs) == 0 || r.h.Network().Connectedness(pi.ID) == network.Connected || dialed == rendezvousMaxDials {
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		dialed++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if r.connect(ctx, pi) {
				connected.Add(1)
			}
		}()
	}
	wg.Wait()
	if connected.Load() > 0 && r.h.DHT != nil {
		r.h.DHT.RefreshRoutingTable()
	}
	r.h.log.Debug("rendezvous: lookup done", "key", r.key, "found", seen, "dialed", dialed, "connected", connected.Load())
}

// connect dials a peer found at the rendezvous and keeps the connection
// only if the peer is a CyxWiz node: anyone can advertise under the key.
func (r *rendezvous) connect(ctx context.Context, pi peer.AddrInfo) bool {
	ctx, cancel := context.WithTimeout(ctx, rendezvousDialTimeout)
	defer cancel()
	if err := r.h.Connect(ctx, pi); err != nil {
		r.h.log.Debug("rendezvous: peer unreachable", "peer", pi.ID, "error", err)
		return false
	}
	if !r.h.isCyxwiz(pi.ID) {
		r.h.log.Debug("rendezvous: peer is not a CyxWiz node", "peer", pi.ID)
		_ = r.h.Network().ClosePeer(pi.ID)
		return false
	}
	r.h.log.Debug("rendezvous: peer connected", "peer", pi.ID)
	return true
}

// isCyxwiz reports whether identify named the peer a CyxWiz node.
func (h *Host) isCyxwiz(id peer.ID) bool {
	v, err := h.Peerstore().Get(id, "AgentVersion")
	agent, _ := v.(string)
	return err == nil && strings.HasPrefix(agent, wire.AgentName+"/")
}

// cyxwizPeers counts the connected CyxWiz nodes.
func (h *Host) cyxwizPeers() int {
	n := 0
	for _, id := range h.Network().Peers() {
		if h.isCyxwiz(id) {
			n++
		}
	}
	return n
}

// sleep waits for d, or until wake (when not nil) fires; false when ctx
// ends first.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
