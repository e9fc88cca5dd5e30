package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/cyxwiz/cyxwiz/compute"
	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	bolt "go.etcd.io/bbolt"
)

// Config holds the timeouts and limits of the market.
type Config struct {
	// BidWindow is the longest an auction stays open.
	BidWindow time.Duration
	// BidGrace closes an auction this long after its first bid.
	BidGrace time.Duration
	// EnoughBids closes an auction at once when reached.
	EnoughBids int
	// AckTimeout bounds the wait for a provider's ack.
	AckTimeout time.Duration
	// InputTimeout bounds a provider's fetch of a job's inputs.
	InputTimeout time.Duration
	// ResultMargin is added to a job's wall limit for its result deadline.
	ResultMargin time.Duration
	// MaxFailures bounds the providers that may fail one job (no ack, no
	// result, a fault of their own) before the job fails.
	MaxFailures int
	// BidTimeout bounds how long a job may wait for a provider that takes
	// it; auctions without bids are repeated until then.
	BidTimeout time.Duration
	// AloneAfter fails a job sooner: once it has waited this long for a
	// provider while the node knows of none but itself (Params.
	// OtherProviders), it fails with a message that says how to get one.
	// 0 waits for BidTimeout.
	AloneAfter time.Duration
	// ProviderLost is how long a running job's provider may stay
	// unreachable before the job goes to a new auction.
	ProviderLost time.Duration
	// MaxConcurrent bounds the jobs a provider runs at once, besides the
	// sum of their memory, which must fit its offer; it queues up to four
	// times as many more.
	MaxConcurrent int
	// Allow and Deny filter requesters by peer ID (provider side).
	Allow, Deny []string
	// MaxLogBytes bounds the output kept of one job, on each side.
	MaxLogBytes int64
	// PublishReceipts publishes each signed receipt on the receipts topic;
	// without it receipts are only kept with their jobs.
	PublishReceipts bool
	// ReceiptOutputs names a successful attempt's output CIDs in its
	// receipt.
	ReceiptOutputs bool
}

// DefaultConfig returns the market's defaults.
func DefaultConfig() Config {
	return Config{
		BidWindow:     500 * time.Millisecond,
		BidGrace:      5 * time.Millisecond,
		EnoughBids:    3,
		AckTimeout:    5 * time.Second,
		InputTimeout:  60 * time.Second,
		ResultMargin:  30 * time.Second,
		MaxFailures:   5,
		BidTimeout:    10 * time.Minute,
		AloneAfter:    30 * time.Second,
		ProviderLost:  10 * time.Second,
		MaxConcurrent: 4,
		MaxLogBytes:   16 << 20,

		PublishReceipts: true,
	}
}

// Params are the inputs of New.
type Params struct {
	Host    *p2p.Host
	Key     crypto.PrivKey
	Content *content.Store
	DB      *bolt.DB
	// WorkDir holds the provider's job folders and the requester's logs.
	WorkDir string
	// Executors run jobs by kind; none makes the node a requester only.
	Executors map[string]compute.Executor
	// Capacity returns the provider's current offer.
	Capacity func() (market.Capacity, bool)
	Config   Config
	// Notify receives job events (Event and LogLine) for subscribers.
	Notify func(jobID string, ev any)
	// CheckInputs checks, once the requester holds a job's inputs, what
	// the job needs of them (a train job's memory with its dataset
	// measured); an error fails the job before any auction. nil: none.
	CheckInputs func(ctx context.Context, spec market.Spec) error
	// OtherProviders counts the providers this node knows of besides
	// itself; nil: the engine does not ask (see Config.AloneAfter).
	OtherProviders func(ctx context.Context) (int, error)
	// Settlement pays priced jobs through escrows on a ledger; nil: no
	// payments are settled.
	Settlement *Settlement
	// Metrics receives the engine's counts; nil counts nothing.
	Metrics Metrics
	Logger  *slog.Logger
}

// LogLine is a piece of a job's output, streamed as it is written.
type LogLine struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	Stream  string `json:"stream"`
	Data    string `json:"data"`
}
