package serving

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/p2p/p2ptest"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// countingCharge counts the calls charged and given back.
type countingCharge struct {
	paid   uint64
	undone *atomic.Int64
}

func (c countingCharge) Paid() uint64 { return c.paid }
func (c countingCharge) Done()        {}
func (c countingCharge) Undo()        { c.undone.Add(1) }

// TestCharge: a priced call is charged before it is queued: without a
// voucher it is refused with CodePayment and never computed; with one the
// answer says what was paid; a call that fails after its charge gives it
// back.
func TestCharge(t *testing.T) {
	hosts := p2ptest.MockNet(t, 2, time.Millisecond)
	prov, caller := hosts[0], hosts[1]
	var charged, undone atomic.Int64
	srv := NewServer(Params{Host: prov, Key: key(t, prov),
		Charge: func(from peer.ID, service string, voucher []byte) (Charge, error) {
			if from != caller.ID() {
				return nil, errors.New("a stranger")
			}
			if len(voucher) == 0 {
				return nil, errors.New("a call to digits costs 3: it carries a voucher")
			}
			return countingCharge{paid: 3 * uint64(charged.Add(1)), undone: &undone}, nil
		}})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Serve("digits", "digits", testModel(t, 8)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := clientOf(t, caller)
	_, err := c.Call(ctx, prov.ID(), "digits", [][]float32{example(1)})
	var re *wire.ReplyError
	if !errors.As(err, &re) || re.Reply.Code != wire.CodePayment {
		t.Fatalf("an unpaid call: %v", err)
	}
	for i := range 3 {
		a, err := c.CallPaid(ctx, prov.ID(), "digits", [][]float32{example(i)}, []byte("voucher"))
		if err != nil || a.Paid != 3*uint64(i+1) || len(a.Outputs) != 1 {
			t.Fatalf("paid call %d: %+v, %v", i, a, err)
		}
	}
	// Outputs that are not finite numbers are refused: the charge goes
	// back.
	huge := float32(3e38)
	if _, err := c.CallPaid(ctx, prov.ID(), "digits", [][]float32{{huge, -huge, huge}}, []byte("voucher")); err == nil {
		t.Fatal("a call with outputs that are not finite was answered")
	}
	if undone.Load() != 1 {
		t.Fatalf("%d charges given back after a failed call, want 1", undone.Load())
	}
	undone.Store(0)
	if st, _ := srv.Stats("digits"); st.Calls < 3 {
		t.Errorf("%d calls computed, want the 3 paid ones", st.Calls)
	}
	// A service stopped after the charge: the call fails, its charge goes
	// back.
	srv.Stop("digits")
	if _, err := c.CallPaid(ctx, prov.ID(), "digits", [][]float32{example(1)}, []byte("voucher")); err == nil {
		t.Fatal("a call to a stopped service was answered")
	}
	if undone.Load() != 0 {
		t.Errorf("%d charges given back for calls refused before they were charged", undone.Load())
	}
}
