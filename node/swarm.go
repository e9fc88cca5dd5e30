package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/rpc"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// connectTimeout bounds swarm.connect.
const connectTimeout = 30 * time.Second

// infoAPI serves node.info.
type infoAPI struct {
	host    *p2p.Host
	role    string
	dhtMode string
	private bool
	index   *indexerService // nil unless an indexer
}

func (a infoAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodNodeInfo, rpc.NoParams(a.info))
}

func (a infoAPI) info(context.Context) (api.NodeInfo, error) {
	suffix, err := multiaddr.NewMultiaddr("/p2p/" + a.host.ID().String())
	if err != nil {
		return api.NodeInfo{}, err
	}
	addrs := []string{}
	for _, a := range a.host.Addrs() {
		addrs = append(addrs, a.Encapsulate(suffix).String())
	}
	return api.NodeInfo{
		ID:           a.host.ID().String(),
		Addresses:    addrs,
		Role:         a.role,
		Version:      Version,
		PrivateSwarm: a.private,
		DHTMode:      a.dhtMode,
		Peers:        len(a.host.Network().Peers()),
		Explorer:     a.index.explorerAddr(),
	}, nil
}

func (a swarmAPI) traffic(context.Context) (api.Traffic, error) {
	t := a.host.Traffic()
	return api.Traffic{TotalIn: t.TotalIn, TotalOut: t.TotalOut, RateIn: t.RateIn, RateOut: t.RateOut}, nil
}

// swarmAPI serves swarm.*: the host's peers, and peer events on the hub.
type swarmAPI struct {
	host   *p2p.Host
	events *hub
}

func (a swarmAPI) register(srv *rpc.Server) {
	srv.Register(api.MethodSwarmPeers, rpc.NoParams(a.peers))
	srv.Register(api.MethodSwarmTraffic, rpc.NoParams(a.traffic))
	srv.Register(api.MethodSwarmConnect, rpc.Method(a.connect))
	srv.Register(api.MethodSwarmDisconnect, rpc.Method(a.disconnect))
	srv.RegisterSubscription(api.MethodSwarmSubscribe, func(ctx context.Context, params json.RawMessage) (<-chan any, error) {
		if err := rpc.CheckNoParams(params); err != nil {
			return nil, err
		}
		return a.events.subscribe(ctx, topicPeers), nil
	})
}

func (a swarmAPI) peers(context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	for _, p := range a.host.Peers() {
		out = append(out, api.Peer{
			ID:        p.ID.String(),
			Address:   p.Addr,
			Direction: p.Direction,
			LatencyMS: float64(p.Latency.Microseconds()) / 1000,
			Agent:     p.Agent,
		})
	}
	return out, nil
}

func (a swarmAPI) connect(ctx context.Context, p api.SwarmConnectParams) (api.SwarmConnectResult, error) {
	if p.Address == "" {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address is required")
	}
	info, err := p2p.ParsePeerAddr(p.Address)
	if err != nil {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address: %v", err)
	}
	if info.ID == a.host.ID() {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address: that is this node")
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := a.host.Connect(ctx, info); err != nil {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeUnreachable, "connect %s: %v", info.ID, err)
	}
	return api.SwarmConnectResult{ID: info.ID.String()}, nil
}

func (a swarmAPI) disconnect(_ context.Context, p api.SwarmDisconnectParams) (struct{}, error) {
	id, err := peer.Decode(p.ID)
	if err != nil {
		return struct{}{}, api.Errorf(api.CodeInvalidParams, "invalid params: id: %v", err)
	}
	if err := a.host.Disconnect(id); err != nil {
		if errors.Is(err, p2p.ErrNotConnected) {
			return struct{}{}, api.Errorf(api.CodeNotFound, "%v", err)
		}
		return struct{}{}, err
	}
	return struct{}{}, nil
}
