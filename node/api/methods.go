package api

import "time"

// Method names.
const (
	MethodNodeInfo        = "node.info"
	MethodSwarmPeers      = "swarm.peers"
	MethodSwarmConnect    = "swarm.connect"
	MethodSwarmDisconnect = "swarm.disconnect"
	MethodSwarmTraffic    = "swarm.traffic"
	// MethodSwarmSubscribe opens a subscription to PeerEvent notifications.
	MethodSwarmSubscribe = "swarm.subscribe"
	// MethodUnsubscribe ends a subscription.
	MethodUnsubscribe = "rpc.unsubscribe"
)

// NodeInfo is the result of node.info.
type NodeInfo struct {
	// ID is the node's peer ID.
	ID string `json:"id"`
	// Addresses are the node's listen addresses, each ending in /p2p/ID.
	Addresses []string `json:"addresses"`
	// Role is "peer" or "indexer".
	Role string `json:"role"`
	// Version is the daemon's version.
	Version string `json:"version"`
	// PrivateSwarm is true when the node only talks to peers with its swarm key.
	PrivateSwarm bool `json:"private_swarm"`
	// DHTMode is the configured DHT mode (auto, server, client).
	DHTMode string `json:"dht_mode"`
	// Peers is the number of connected peers.
	Peers int `json:"peers"`
	// Explorer is the address of the indexer's public explorer API, ""
	// when the node serves none.
	Explorer string `json:"explorer,omitempty"`
}

// Peer is one entry of swarm.peers.
type Peer struct {
	// ID is the peer's ID.
	ID string `json:"id"`
	// Address is the remote address of the connection.
	Address string `json:"address"`
	// Direction is "inbound" or "outbound".
	Direction string `json:"direction"`
	// LatencyMS is the smoothed round-trip time, 0 when unknown.
	LatencyMS float64 `json:"latency_ms"`
	// Agent is the peer's identify agent string, when known.
	Agent string `json:"agent,omitempty"`
}

// Traffic is the result of swarm.traffic: the bytes the node has sent and
// received over all its connections.
type Traffic struct {
	// TotalIn and TotalOut are bytes since the node started.
	TotalIn  int64 `json:"total_in"`
	TotalOut int64 `json:"total_out"`
	// RateIn and RateOut are bytes per second, smoothed over the last
	// seconds.
	RateIn  float64 `json:"rate_in"`
	RateOut float64 `json:"rate_out"`
}

// SwarmConnectParams are the parameters of swarm.connect.
type SwarmConnectParams struct {
	// Address is a multiaddr ending in /p2p/ID.
	Address string `json:"address"`
}

// SwarmConnectResult is the result of swarm.connect.
type SwarmConnectResult struct {
	// ID is the peer now connected.
	ID string `json:"id"`
}

// SwarmDisconnectParams are the parameters of swarm.disconnect.
type SwarmDisconnectParams struct {
	// ID is the peer to disconnect.
	ID string `json:"id"`
}

// UnsubscribeParams are the parameters of rpc.unsubscribe.
type UnsubscribeParams struct {
	Subscription string `json:"subscription"`
}

// PeerEvent is a notification of swarm.subscribe.
type PeerEvent struct {
	// ID is the peer whose state changed.
	ID string `json:"id"`
	// State is "connected" or "disconnected".
	State string `json:"state"`
	// Time is when the node saw the change.
	Time time.Time `json:"time"`
}
