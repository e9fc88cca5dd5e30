// Package p2p builds the libp2p side of a CyxWiz node: the host (TCP and
// QUIC, Noise, Yamux, resource and connection managers, AutoNAT, hole
// punching, relays), the Kademlia DHT under the /cyxwiz protocol prefix,
// gossipsub, mDNS discovery, a rendezvous in the public IPFS DHT (a client
// of it beside our own DHT, used only to find the first CyxWiz peers) and
// private swarms protected by a pre-shared key.
//
// It knows nothing of JSON-RPC, repos or the market; the node package wires
// it to those.
package p2p
