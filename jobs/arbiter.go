package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// arbiterOp names what an arbiterRequest asks.
type arbiterOp string

// Operations of wire.ArbiterProtocol.
const (
	// opAddress asks an arbiter for its ledger address.
	opAddress arbiterOp = "address"
	// opRefund asks an arbiter to co-sign a refund after the deadline.
	opRefund arbiterOp = "refund"
	// opDispute opens a dispute with an arbiter.
	opDispute arbiterOp = "dispute"
	// opAward, from an arbiter to the side a dispute was decided for,
	// asks it to co-sign the payout.
	opAward arbiterOp = "award"
)

// arbiterRequest is one request of wire.ArbiterProtocol.
type arbiterRequest struct {
	Op      arbiterOp           `json:"op"`
	Terms   *market.EscrowTerms `json:"terms,omitempty"`
	Kind    string              `json:"kind,omitempty"`
	Tx      []byte              `json:"tx,omitempty"`
	Dispute *Dispute            `json:"dispute,omitempty"`
	// Amount and Voucher: a split's amount, and the caller's voucher that
	// covers it.
	Amount  uint64           `json:"amount,omitempty"`
	Voucher *market.Envelope `json:"voucher,omitempty"`
}

// arbiterResponse answers an arbiterRequest: a reply, and what the
// request asked for when the reply is wire.CodeOK.
type arbiterResponse struct {
	wire.Reply
	Address string `json:"address,omitempty"`
	Tx      string `json:"tx,omitempty"`
}

const maxArbiterMessage = 128 << 10

func (pay *settler) askArbiter(ctx context.Context, req arbiterRequest, res *arbiterResponse) error {
	return pay.askArbiterPeer(ctx, pay.p.Settlement.Arbiter.String(), req, res)
}

func (pay *settler) askArbiterPeer(ctx context.Context, arbiter string, req arbiterRequest, res *arbiterResponse) error {
	p, err := peer.Decode(arbiter)
	if err != nil {
		return fmt.Errorf("arbiter %q: %w", arbiter, err)
	}
	if len(pay.p.Host.Network().ConnsToPeer(p)) == 0 {
		if err := pay.p.Host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return fmt.Errorf("arbiter %s: %w", p, err)
		}
	}
	// Long enough for the other side to co-sign and wait for the ledger.
	s, r, w, err := pay.newStream(ctx, p, wire.ArbiterProtocol, 90*time.Second)
	if err != nil {
		return fmt.Errorf("arbiter %s: %w", p, err)
	}
	defer s.Close()
	if err := wire.WriteJSON(w, req); err != nil {
		s.Reset()
		return err
	}
	if err := wire.ReadJSON(r, maxArbiterMessage, res); err != nil {
		s.Reset()
		return fmt.Errorf("arbiter %s: %w", p, err)
	}
	return nil
}

// handleArbiter serves wire.ArbiterProtocol. A refund is co-signed only when
// the vault on the ledger holds the terms given and the ledger's clock is
// past their deadline (the escrow enforces both), so the arbiter can
// answer anyone: a refund pays the vault's requester and no one else.
func (pay *settler) handleArbiter(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(45 * time.Second))
	r, w := bufReader(s), bufWriter(s)
	data, err := wire.ReadFrame(r, maxArbiterMessage)
	if err != nil {
		s.Reset()
		return
	}
	var req arbiterRequest
	res := arbiterResponse{Reply: wire.OK}
	refuse := func(reason string) { res.Reply = wire.Reply{Code: wire.CodeRejected, Reason: reason} }
	failed := func(err error) { res.Reply = wire.Reply{Code: wire.CodeFailed, Reason: err.Error()} }
	esc := pay.p.Settlement.Escrow
	ctx, cancel := context.WithTimeout(pay.ctx, 40*time.Second)
	defer cancel()
	serve := pay.p.Settlement.Serve
	switch err := json.Unmarshal(data, &req); {
	case err != nil:
		refuse("bad request: " + err.Error())
	case req.Op == opAward:
		// Any node with an escrow may be the side a dispute is decided for.
		res.Tx, err = pay.coSignAward(ctx, s.Conn().RemotePeer(), req)
		if err != nil {
			failed(err)
		}
	case !serve:
		refuse("this node is not an arbiter")
	case req.Op == opAddress:
		res.Address = esc.Address()
	case req.Op == opDispute && req.Dispute != nil:
		if err := pay.openDispute(ctx, s.Conn().RemotePeer(), *req.Dispute); err != nil {
			failed(err)
		}
	case req.Op == opSplit:
		res.Tx, err = pay.coSignSplit(ctx, s.Conn().RemotePeer(), req)
		if err != nil {
			failed(err)
		}
	case req.Op == opRefund && req.Terms != nil:
		t := *req.Terms
		if t.Arbiter != esc.Address() {
			refuse("this arbiter is not a member of the escrow")
			break
		}
		if pay.inDispute(t.Vault) {
			refuse("the escrow is in dispute")
			break
		}
		if err := esc.Verify(ctx, t.Ref, t.Terms); err != nil {
			failed(err)
			break
		}
		tx, err := esc.CoSign(ctx, settlement.Payout{Kind: settlement.Refund, Ref: t.Ref, Tx: req.Tx}, t.Terms)
		if err != nil {
			failed(err)
			break
		}
		res.Tx = tx
		pay.log.Info("refund co-signed", "escrow", t.JobID, "amount", t.Amount, "requester", t.Requester, "tx", tx)
	default:
		refuse(fmt.Sprintf("unknown request %q", req.Op))
	}
	res.Reason = wire.Truncate(res.Reason, wire.MaxReasonBytes)
	if err := wire.WriteJSON(w, res); err != nil {
		s.Reset()
	}
}
