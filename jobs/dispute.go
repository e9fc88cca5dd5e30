package jobs

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cyxwiz/cyxwiz/p2p/wire"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"
	bolt "go.etcd.io/bbolt"
)

// disputesBucket holds an arbiter's disputes, by vault address: escrow IDs
// are chosen by requesters, vaults are bound to their terms on the ledger.
const disputesBucket = "disputes"

// Dispute sides.
const (
	SideRequester = "requester"
	SideProvider  = "provider"
)

// Dispute is an escrow an arbiter is asked to decide: while it is open
// the arbiter co-signs no refund of it, and it ends when the arbiter pays
// the vault to the side it finds for, with that side's signature.
type Dispute struct {
	Terms         market.EscrowTerms `json:"terms"`
	RequesterPeer string             `json:"requester_peer"`
	ProviderPeer  string             `json:"provider_peer"`
	OpenedBy      string             `json:"opened_by"` // requester or provider
	Reason        string             `json:"reason"`
	// Evidence is the provider's signed result, when there is one.
	Evidence []byte `json:"evidence,omitempty"`
	// Signature is the opener's ledger key's signature of the dispute
	// (DisputeMessage): it proves the opener is that side of the escrow.
	Signature []byte `json:"signature,omitempty"`
	// Proven maps each side that signed a dispute of this escrow to the
	// peer it signed from: the node a decision for that side goes to.
	Proven    map[string]string `json:"proven,omitempty"`
	OpenedAt  time.Time         `json:"opened_at"`
	Winner    string            `json:"winner,omitempty"` // once resolved
	Tx        string            `json:"tx,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// maxDisputeReason bounds a dispute's reason.
const maxDisputeReason = 1000

// ErrNoEscrow: the job has no escrow that is still locked.
var ErrNoEscrow = errors.New("no escrow of this job is locked")

// Dispute asks the arbiter to decide the job's locked escrow, from either
// side: the requester's job, or the job this node provided. Until the
// arbiter decides, the escrow is neither refunded nor, on this side,
// released automatically.
func (pay *settler) Dispute(ctx context.Context, id, reason string) (*Job, error) {
	if pay.p.Settlement == nil {
		return nil, errors.New("this node settles no payments")
	}
	if len(reason) > maxDisputeReason {
		return nil, fmt.Errorf("reason of %d bytes, at most %d", len(reason), maxDisputeReason)
	}
	side, j, err := pay.disputable(id)
	if err != nil {
		return nil, err
	}
	i := len(j.Escrows) - 1
	rec := j.Escrows[i]
	d := Dispute{Terms: rec.Terms, RequesterPeer: j.Requester, ProviderPeer: rec.ProviderPeer, OpenedBy: side, Reason: reason}
	if pay.p.Settlement.Sign == nil {
		return nil, errors.New("this node cannot sign with its ledger key")
	}
	d.Signature = pay.p.Settlement.Sign(DisputeMessage(rec.Terms.JobID, side, pay.self.String(), reason))
	if j.ResultEnvelope != nil {
		d.Evidence, _ = j.ResultEnvelope.Marshal()
	}
	var res arbiterResponse
	if err := pay.askArbiterPeer(ctx, rec.Terms.ArbiterPeer, arbiterRequest{Op: opDispute, Dispute: &d}, &res); err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("arbiter: %w", err)
	}
	if side == SideRequester {
		return pay.update(j.ID, func(j *Job) error {
			j.Escrows[i].Disputed = true
			j.Escrows[i].Error = "in dispute: " + reason
			return nil
		})
	}
	return j, nil
}

// disputable finds the job's side and record with a locked escrow.
func (pay *settler) disputable(id string) (string, *Job, error) {
	if j, err := pay.Get(id); err == nil {
		if n := len(j.Escrows); n > 0 && j.Escrows[n-1].State == EscrowLocked {
			return SideRequester, j, nil
		}
		return "", nil, ErrNoEscrow
	}
	provided, err := pay.Provided()
	if err != nil {
		return "", nil, err
	}
	for _, j := range provided {
		if j.ID == id && len(j.Escrows) > 0 {
			return SideProvider, j, nil
		}
	}
	return "", nil, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// DisputeMessage is what a side signs with its ledger key to open (or
// join) a dispute from a peer.
func DisputeMessage(escrowID, side, peerID, reason string) []byte {
	return []byte("cyxwiz dispute/1\x00" + escrowID + "\x00" + side + "\x00" + peerID + "\x00" + reason)
}

// openDispute is the arbiter's side of a dispute request from peer from.
// The request must be signed by the ledger key of the side it names, so
// that no one outside the escrow can hold up its refund; a second request,
// from the other side, adds that side's node to the dispute.
func (pay *settler) openDispute(ctx context.Context, from peer.ID, d Dispute) error {
	esc := pay.p.Settlement.Escrow
	switch {
	case d.Terms.Arbiter != esc.Address():
		return errors.New("this arbiter is not a member of the escrow")
	case d.OpenedBy != SideRequester && d.OpenedBy != SideProvider:
		return fmt.Errorf("opened by %q", d.OpenedBy)
	case len(d.Reason) > maxDisputeReason || len(d.Evidence) > 64<<10:
		return errors.New("dispute too large")
	}
	addr := d.Terms.Requester
	if d.OpenedBy == SideProvider {
		addr = d.Terms.Provider
	}
	pub, err := base58.Decode(addr)
	if err != nil || len(pub) != ed25519.PublicKeySize ||
		!ed25519.Verify(pub, DisputeMessage(d.Terms.JobID, d.OpenedBy, from.String(), d.Reason), d.Signature) {
		return fmt.Errorf("the dispute is not signed by the %s's ledger key", d.OpenedBy)
	}
	if err := esc.Verify(ctx, d.Terms.Ref, d.Terms.Terms); err != nil {
		return err
	}
	now := time.Now().UTC()
	return pay.p.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(disputesBucket))
		if err != nil {
			return err
		}
		stored := d
		if old := b.Get([]byte(d.Terms.Vault)); old != nil {
			if err := json.Unmarshal(old, &stored); err != nil {
				return err
			}
		} else {
			stored.OpenedAt, stored.Winner, stored.Tx, stored.Proven = now, "", "", map[string]string{}
		}
		stored.Proven[d.OpenedBy] = from.String()
		stored.UpdatedAt = now
		data, err := json.Marshal(stored)
		if err != nil {
			return err
		}
		return b.Put([]byte(d.Terms.Vault), data)
	})
}

// putDispute stores a dispute.
func (pay *settler) putDispute(d Dispute) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return pay.p.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(disputesBucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(d.Terms.Vault), data)
	})
}

// Disputes lists the disputes this arbiter was asked to decide, newest
// first.
func (pay *settler) Disputes() ([]Dispute, error) {
	var out []Dispute
	err := pay.p.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(disputesBucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var d Dispute
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].OpenedAt.After(out[j].OpenedAt) })
	return out, err
}

// inDispute reports whether the vault has an open dispute.
func (pay *settler) inDispute(vault string) bool {
	open := true // refuse while unsure
	pay.p.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(disputesBucket))
		v := []byte(nil)
		if b != nil {
			v = b.Get([]byte(vault))
		}
		var d Dispute
		open = v != nil && (json.Unmarshal(v, &d) != nil || d.Winner == "")
		return nil
	})
	return open
}

// Resolve decides a dispute for winner (requester or provider): the
// arbiter proposes a payout of the whole vault to that side and sends it
// to that side's node, which co-signs and submits it.
func (pay *settler) Resolve(ctx context.Context, escrowID, winner string) (Dispute, error) {
	if pay.p.Settlement == nil || !pay.p.Settlement.Serve {
		return Dispute{}, errors.New("this node is not an arbiter")
	}
	ds, err := pay.Disputes()
	if err != nil {
		return Dispute{}, err
	}
	i := -1
	for k, d := range ds {
		if d.Terms.JobID == escrowID || d.Terms.Vault == escrowID {
			if i >= 0 {
				return Dispute{}, fmt.Errorf("several disputes name escrow %s: give the vault address instead", escrowID)
			}
			i = k
		}
	}
	if i < 0 {
		return Dispute{}, fmt.Errorf("%w: dispute %s", ErrNotFound, escrowID)
	}
	d := ds[i]
	if d.Winner != "" {
		return d, fmt.Errorf("dispute %s was decided for the %s", escrowID, d.Winner)
	}
	kind, to := settlement.AwardProvider, d.ProviderPeer
	switch winner {
	case SideProvider:
	case SideRequester:
		kind, to = settlement.AwardRequester, d.RequesterPeer
	default:
		return d, fmt.Errorf("winner %q is not requester or provider", winner)
	}
	if p, ok := d.Proven[winner]; ok {
		to = p // the node that proved it is that side
	}
	po, err := pay.p.Settlement.Escrow.Propose(ctx, d.Terms.Ref, d.Terms.Terms, kind)
	if err != nil {
		return d, err
	}
	var res arbiterResponse
	err = pay.askArbiterPeer(ctx, to, arbiterRequest{Op: opAward, Terms: &d.Terms, Kind: string(kind), Tx: po.Tx}, &res)
	if err == nil && res.Code != wire.CodeOK {
		err = fmt.Errorf("the %s refused the award: %w", winner, res.Err())
	}
	if err != nil {
		// The payout may have landed though the answer was lost.
		if st, serr := pay.p.Settlement.Escrow.Status(ctx, d.Terms.Ref); serr == nil && st.State != settlement.Locked {
			d.Winner = SideProvider
			if st.State == settlement.Refunded {
				d.Winner = SideRequester
			}
			d.UpdatedAt = time.Now().UTC()
			return d, pay.putDispute(d)
		}
		return d, err
	}
	d.Winner, d.Tx, d.UpdatedAt = winner, res.Tx, time.Now().UTC()
	pay.log.Info("dispute decided", "escrow", escrowID, "winner", winner, "tx", res.Tx)
	return d, pay.putDispute(d)
}

// coSignAward co-signs an arbiter's payout of a disputed escrow to this
// node: the escrow checks it pays this node exactly the vault.
func (pay *settler) coSignAward(ctx context.Context, from peer.ID, req arbiterRequest) (string, error) {
	s := pay.p.Settlement
	if req.Terms == nil {
		return "", errors.New("no terms")
	}
	t := *req.Terms
	kind := settlement.PayoutKind(req.Kind)
	to, err := kind.Recipient(t.Terms)
	switch {
	case err != nil:
		return "", err
	case kind != settlement.AwardProvider && kind != settlement.AwardRequester:
		return "", fmt.Errorf("%s is not a dispute award", kind)
	case from.String() != t.ArbiterPeer:
		return "", errors.New("an award comes from the escrow's arbiter")
	case to != s.Escrow.Address():
		return "", errors.New("the award does not pay this node")
	}
	return s.Escrow.CoSign(ctx, settlement.Payout{Kind: kind, Ref: t.Ref, Tx: req.Tx}, t.Terms)
}
