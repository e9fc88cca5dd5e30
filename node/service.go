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

// registerAPI adds every JSON-RPC method of the node. Each method is
// documented in docs/rpc.md.
func (n *Node) registerAPI() {
	n.registerContent()
	n.registerJobs()
	n.registerWallet()
	n.registerDisputes()
	n.rpc.Register(api.MethodMarketProviders, rpc.Method(n.marketProviders))
	n.rpc.Register(api.MethodNodeInfo, rpc.NoParams(n.nodeInfo))
	n.rpc.Register(api.MethodSwarmPeers, rpc.NoParams(n.swarmPeers))
	n.rpc.Register(api.MethodSwarmConnect, rpc.Method(n.swarmConnect))
	n.rpc.Register(api.MethodSwarmDisconnect, rpc.Method(n.swarmDisconnect))
	n.rpc.RegisterSubscription(api.MethodSwarmSubscribe, func(ctx context.Context, params json.RawMessage) (<-chan any, error) {
		if err := rpc.CheckNoParams(params); err != nil {
			return nil, err
		}
		return n.events.subscribe(ctx, topicPeers), nil
	})
}

func (n *Node) nodeInfo(context.Context) (api.NodeInfo, error) {
	suffix, err := multiaddr.NewMultiaddr("/p2p/" + n.host.ID().String())
	if err != nil {
		return api.NodeInfo{}, err
	}
	addrs := []string{}
	for _, a := range n.host.Addrs() {
		addrs = append(addrs, a.Encapsulate(suffix).String())
	}
	return api.NodeInfo{
		ID:           n.host.ID().String(),
		Addresses:    addrs,
		Role:         n.cfg.Role,
		Version:      Version,
		PrivateSwarm: n.private,
		DHTMode:      n.cfg.Swarm.DHTMode,
		Peers:        len(n.host.Network().Peers()),
	}, nil
}

func (n *Node) swarmPeers(context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	for _, p := range n.host.Peers() {
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

func (n *Node) swarmConnect(ctx context.Context, p api.SwarmConnectParams) (api.SwarmConnectResult, error) {
	if p.Address == "" {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address is required")
	}
	info, err := p2p.ParsePeerAddr(p.Address)
	if err != nil {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address: %v", err)
	}
	if info.ID == n.host.ID() {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeInvalidParams, "invalid params: address: that is this node")
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, info); err != nil {
		return api.SwarmConnectResult{}, api.Errorf(api.CodeUnreachable, "connect %s: %v", info.ID, err)
	}
	return api.SwarmConnectResult{ID: info.ID.String()}, nil
}

func (n *Node) swarmDisconnect(_ context.Context, p api.SwarmDisconnectParams) (struct{}, error) {
	id, err := peer.Decode(p.ID)
	if err != nil {
		return struct{}{}, api.Errorf(api.CodeInvalidParams, "invalid params: id: %v", err)
	}
	if err := n.host.Disconnect(id); err != nil {
		if errors.Is(err, p2p.ErrNotConnected) {
			return struct{}{}, api.Errorf(api.CodeNotFound, "%v", err)
		}
		return struct{}{}, err
	}
	return struct{}{}, nil
}
