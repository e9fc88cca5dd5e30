package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"os"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func frame(data []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(data)))
	return append(out, data...)
}

// TestHostileMessages: garbage and forged messages on the jobs topic and on
// the market streams are refused; the swarm keeps running jobs.
func TestHostileMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarm(t, 3)
	req := nodes[0]
	ctx := context.Background()
	guest, _ := os.ReadFile(guestModule(t))
	module := addFile(t, req.client, "guest.wasm", guest)
	input := addFile(t, req.client, "data.txt", []byte("still fine\n"))
	waitProviders(t, req.client, 2)

	attacker := p2ptest.NewHost(t, p2ptest.Config(), nil)
	for _, n := range nodes {
		if err := attacker.Connect(ctx, p2ptest.AddrInfo(n.Host())); err != nil {
			t.Fatal(err)
		}
	}
	topic, err := attacker.PubSub.Join(wire.JobsTopic)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the mesh form

	// Garbage, an announcement signed by someone else, a stale one, an oversized one.
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	s, err := market.ParseSpec(spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	forged, _ := market.Seal(other, market.TypeAnnouncement, market.Announcement{JobID: "06H1QJVMBSEFJ82N4JQV588CY8", Requester: otherID.String(),
		Attempt: 1, Spec: s, IssuedAt: now, BidsUntil: now.Add(time.Second)})
	forgedData, _ := forged.Marshal()
	for _, msg := range [][]byte{[]byte("not json"), forgedData, make([]byte, market.MaxEnvelopeBytes+10)} {
		if err := topic.Publish(ctx, msg); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	// A result for a job the attacker was never awarded.
	job, err := req.client.JobSubmit(ctx, spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	attackerKey := attacker.Peerstore().PrivKey(attacker.ID())
	fake, _ := market.Seal(attackerKey, market.TypeResult, market.Result{JobID: job.ID, Attempt: 1, Provider: attacker.ID().String(),
		Status: market.StatusSucceeded, StartedAt: now, FinishedAt: now})
	fakeData, _ := fake.Marshal()
	st, err := attacker.NewStream(ctx, req.Host().ID(), wire.ResultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	st.Write(frame(fakeData))
	reply, err := wire.ReadReply(bufio.NewReader(st))
	st.Close()
	if err != nil || reply.Code != wire.CodeRejected {
		t.Errorf("forged result answered %+v (%v), want a rejection", reply, err)
	}

	// A bid whose signer is not the peer sending it.
	bid, _ := market.Seal(other, market.TypeBid, market.Bid{JobID: job.ID, Attempt: 1, Provider: otherID.String(), ExpiresAt: now.Add(time.Minute)})
	bidData, _ := bid.Marshal()
	if st, err := attacker.NewStream(ctx, req.Host().ID(), wire.BidProtocol); err == nil {
		st.Write(frame(bidData))
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		if reply, err := wire.ReadReply(bufio.NewReader(st)); err == nil && reply.Code == wire.CodeOK {
			t.Error("a bid signed by another peer was taken")
		}
		st.Close()
	}

	done := waitJob(t, req.client, job.ID, 60*time.Second)
	if done.State != "succeeded" || done.Provider == attacker.ID().String() {
		t.Fatalf("job after the attack: %+v", done)
	}
	if _, err := req.client.NodeInfo(ctx); err != nil {
		t.Fatalf("requester stopped serving: %v", err)
	}
	for _, n := range nodes[1:] {
		if _, err := n.client.MarketProviders(ctx, api.ProvidersParams{GPU: true}); err != nil {
			t.Fatalf("provider stopped serving: %v", err)
		}
	}
}
