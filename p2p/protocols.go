package p2p

import "github.com/libp2p/go-libp2p/core/protocol"

// Protocol identifiers and names of the CyxWiz network. Every one carries a
// version; a change to a wire format gets a new ID.
const (
	// DHTPrefix namespaces the Kademlia DHT so that CyxWiz nodes form their own
	// network instead of joining the IPFS DHT.
	DHTPrefix protocol.ID = "/cyxwiz"
	// MDNSService is the service name announced on the LAN.
	MDNSService = "cyxwiz"
	// AgentName prefixes the agent version sent by identify.
	AgentName = "cyxwiz"
)
