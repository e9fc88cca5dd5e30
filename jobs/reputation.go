package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/reputation"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// heardQueue bounds the heard receipts waiting for a ledger check; more
// are dropped.
const heardQueue = 256

// Reputation returns what this node knows of a provider: its own tally of
// jobs with it and the receipts it counted (see package reputation).
func (e *Engine) Reputation(provider string) reputation.Summary {
	return e.c.rep.Summarize(provider, e.req.outcomes(provider))
}

// newBook returns the engine's reputation book, confirming escrows with
// the node's ledger when it has one.
func newBook(p Params) *reputation.Book {
	if p.Settlement != nil && p.Settlement.Escrow != nil {
		return reputation.New(p.Settlement.Escrow)
	}
	return reputation.New(nil)
}

// countOwn adds to the book the receipts of a requester job.
func (c *core) countOwn(j *Job) {
	for _, o := range j.Outcomes {
		if o.Receipt == nil {
			continue
		}
		if r, _, err := o.Receipt.Open(); err == nil {
			c.rep.AddOwn(r) // an error: the attempt was counted before
		}
	}
}

// listen takes the receipts heard on the receipts topic, which its
// validator has checked, and counts them once their escrows are checked
// on the ledger, one at a time.
func (rc *receipts) listen(t *pubsub.Topic) error {
	sub, err := t.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe to receipts topic: %w", err)
	}
	queue := make(chan market.SignedReceipt, heardQueue)
	rc.spawn(func() {
		for {
			select {
			case <-rc.ctx.Done():
				return
			case sr := <-queue:
				err := rc.rep.Add(rc.ctx, sr, rc.self.String())
				if err != nil && rc.ctx.Err() == nil {
					rc.log.Debug("receipt not counted", "receipt", sr.ID(), "error", err)
				}
			}
		}
	})
	rc.spawn(func() {
		defer sub.Cancel()
		for {
			m, err := sub.Next(rc.ctx)
			if err != nil {
				return
			}
			sr, err := market.ParseSignedReceipt(m.Data)
			if err != nil {
				continue
			}
			select {
			case queue <- sr:
			default: // the ledger is behind: drop it
			}
		}
	})
	return nil
}

// validateReceipt is the receipts topic's validator: a signed receipt
// within its size, whose signatures verify, fresh. Anything else is
// rejected, which scores its sender down.
func validateReceipt(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	sr, err := market.ParseSignedReceipt(m.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	r, _, err := sr.Open()
	if err != nil {
		return pubsub.ValidationReject
	}
	if r.CheckFresh(time.Now()) != nil {
		// Stale or early: a replay, or a clock that is off; dropped
		// without blaming the peer that relayed it.
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationAccept
}
