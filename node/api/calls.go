package api

import "context"

// NodeInfo calls node.info.
func (c *Client) NodeInfo(ctx context.Context) (NodeInfo, error) {
	var out NodeInfo
	err := c.Call(ctx, MethodNodeInfo, nil, &out)
	return out, err
}

// SwarmPeers calls swarm.peers.
func (c *Client) SwarmPeers(ctx context.Context) ([]Peer, error) {
	var out []Peer
	err := c.Call(ctx, MethodSwarmPeers, nil, &out)
	return out, err
}

// SwarmConnect calls swarm.connect.
func (c *Client) SwarmConnect(ctx context.Context, address string) (SwarmConnectResult, error) {
	var out SwarmConnectResult
	err := c.Call(ctx, MethodSwarmConnect, SwarmConnectParams{Address: address}, &out)
	return out, err
}

// SwarmDisconnect calls swarm.disconnect.
func (c *Client) SwarmDisconnect(ctx context.Context, id string) error {
	return c.Call(ctx, MethodSwarmDisconnect, SwarmDisconnectParams{ID: id}, nil)
}

// SubscribePeers opens a swarm.subscribe subscription; each event decodes
// into a PeerEvent.
func (c *Client) SubscribePeers(ctx context.Context) (*Subscription, error) {
	return c.Subscribe(ctx, MethodSwarmSubscribe, nil)
}

// SwarmTraffic calls swarm.traffic.
func (c *Client) SwarmTraffic(ctx context.Context) (Traffic, error) {
	var out Traffic
	err := c.Call(ctx, MethodSwarmTraffic, nil, &out)
	return out, err
}
