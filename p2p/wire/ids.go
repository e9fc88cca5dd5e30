// Package wire is the CyxWiz network protocol in one place: every protocol
// ID, gossipsub topic and DHT namespace, each with its version; the one
// framing every stream uses, with a size bound on each frame; and the
// typed reply (a code and a reason) that answers a message.
//
// A change to a message's format gets a new ID here, so that nodes of
// different versions refuse each other's streams instead of misreading
// them. The messages themselves (signed envelopes and what they carry)
// are the market's; this package knows only their frames.
package wire

import "github.com/libp2p/go-libp2p/core/protocol"

// Names of the network and of its DHT.
const (
	// DHTPrefix namespaces the Kademlia DHT (its protocol becomes
	// /cyxwiz/kad/1.0.0), so that CyxWiz nodes form their own DHT instead
	// of joining the IPFS one.
	DHTPrefix protocol.ID = "/cyxwiz"
	// MDNSService is the service name announced on the LAN.
	MDNSService = "cyxwiz"
	// AgentName prefixes the agent version sent by identify.
	AgentName = "cyxwiz"
	// RendezvousPrefix, followed by the network's name (swarm.network),
	// is the key CyxWiz nodes advertise and look up in the public IPFS
	// DHT to find their first peers.
	RendezvousPrefix = "cyxwiz/swarm/v1/"
)

// Records and keys in the DHT.
const (
	// DHTNamespace is the namespace of every CyxWiz record in the DHT: a
	// key is /cyxwiz/<kind>/<version>/..., and one validator serves the
	// namespace.
	DHTNamespace = "cyxwiz"
	// CapacityKeyPrefix is where a provider's signed capacity record lives:
	// CapacityKeyPrefix + its peer ID.
	CapacityKeyPrefix = "/" + DHTNamespace + "/cap/1/"
	// ServiceKeyPrefix is where a provider keeps its signed service record
	// of each service it serves: ServiceKeyPrefix + its peer ID + "/" +
	// the service name.
	ServiceKeyPrefix = "/" + DHTNamespace + "/svc/1/"
	// ProvidersName is hashed into the CID under which every provider
	// announces itself as a content provider, so that requesters can list
	// them.
	ProvidersName = "cyxwiz/providers/1"
	// ServicePrefix, followed by a deployment's service name, is hashed
	// into the CID under which every provider serving it announces itself.
	ServicePrefix = "cyxwiz/service/1/"
)

// Gossipsub topics.
const (
	// JobsTopic carries signed job announcements.
	JobsTopic = "/cyxwiz/jobs/1"
	// ReceiptsTopic carries signed job receipts: the requester's account
	// of how an attempt ended, countersigned by its provider.
	ReceiptsTopic = "/cyxwiz/receipts/1"
	// ModelsTopic carries the signed model records of the registry.
	ModelsTopic = "/cyxwiz/models/1"
)

// Stream protocols of the market. A stream carries frames (WriteFrame):
// one signed envelope from the side that opens it, and a Reply, an
// envelope or nothing back, as each protocol says.
const (
	// BidProtocol: provider to requester, one signed bid answered by a
	// Reply (CodeOK, CodeClosed or CodeFull).
	BidProtocol protocol.ID = "/cyxwiz/market/bid/2.0.0"
	// AwardProtocol: requester to provider, a signed award answered by a
	// signed ack.
	AwardProtocol protocol.ID = "/cyxwiz/market/award/1.0.0"
	// ResultProtocol: provider to requester, the signed result answered by
	// a Reply (CodeOK, CodeFinal or CodeRejected).
	ResultProtocol protocol.ID = "/cyxwiz/market/result/2.0.0"
	// LogProtocol: provider to requester, the job's output as it is
	// written, one JSON frame per piece, no answer.
	LogProtocol protocol.ID = "/cyxwiz/market/logs/1.0.0"
	// CancelProtocol: requester to provider, a signed cancel, no answer.
	CancelProtocol protocol.ID = "/cyxwiz/market/cancel/1.0.0"
	// ReceiptProtocol: requester to provider, a signed receipt answered
	// by one JSON frame: a Reply and, when the provider agrees, its
	// countersignature.
	ReceiptProtocol protocol.ID = "/cyxwiz/market/receipt/1.0.0"
	// ArbiterProtocol: any node to an arbiter, or an arbiter to the side a
	// dispute was decided for: one JSON request and one JSON answer that
	// carries a Reply.
	ArbiterProtocol protocol.ID = "/cyxwiz/arbiter/2.0.0"
)

// InferProtocol: a caller to a provider serving a model. A stream stays
// open for many calls, several at once: each request frame is a call id,
// a small JSON header (the service, the examples' shape) and the examples
// as little-endian float32; each answer frame is the call's id, a JSON
// header (a Reply and, on success, the outputs' shape, the provider's
// signed batch, the call's index and proof in it) and the outputs as
// little-endian float32. Answers come as batches finish, in any order;
// id 0 answers the stream itself just before the provider ends it. The
// serving package holds the frames.
const InferProtocol protocol.ID = "/cyxwiz/infer/2.0.0"

// BudgetProtocol: a caller to a provider, one signed market.Budget (the
// escrow it locked to pay for calls), answered by a Reply.
const BudgetProtocol protocol.ID = "/cyxwiz/infer/budget/1.0.0"

// DAGProtocol streams whole DAGs between CyxWiz nodes: one request names
// the roots, and the provider answers with every block under them in one
// stream, then an end marker with a status. It moves large content several
// times faster than bitswap's block-by-block exchange; bitswap remains the
// fallback and the path to other IPFS software. Its block frames (a CID
// beside each block) and their bounds are the content package's own.
const DAGProtocol protocol.ID = "/cyxwiz/dag/1.0.0"

// ChallengeProtocol: a challenger (an indexer) to a provider, a check of
// the provider's capacity claim in four JSON frames: the challenger's
// market.Challenge (kind and size), the provider's Reply (CodeOK, or
// CodeFull when it takes no more challenges now, CodeRejected for one
// out of bounds), the challenger's market.ChallengeSeed, whose arrival
// starts the clock, and the provider's market.ChallengeAnswer.
const ChallengeProtocol protocol.ID = "/cyxwiz/challenge/1.0.0"

// AttestationsProtocol: any node to an indexer, one JSON request naming
// providers, answered by one JSON frame of the indexer's signed
// attestations (market.Attestation envelopes) of those it has checked.
const AttestationsProtocol protocol.ID = "/cyxwiz/attestations/1.0.0"
