package solana

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
)

func testLedger(t *testing.T, handler http.HandlerFunc) *Ledger {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	key, err := sol.NewRandomPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{RPC: srv.URL, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTransientFailuresAreRetried(t *testing.T) {
	var calls atomic.Int32
	l := testLedger(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch calls.Add(1) {
		case 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"Node is behind"}}`))
		default:
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"context":{"slot":1},"value":42}}`))
		}
	})
	v, err := l.NativeBalance(context.Background(), l.Address())
	if err != nil || v != 42 || calls.Load() != 3 {
		t.Fatalf("balance %d, %v after %d calls", v, err, calls.Load())
	}
}

func TestPermanentFailuresAreNot(t *testing.T) {
	var calls atomic.Int32
	l := testLedger(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		calls.Add(1)
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Transaction simulation failed",` +
			`"data":{"err":{"InstructionError":[0,"MissingRequiredSignature"]},"logs":["Program log: Error"]}}}`))
	})
	tx, err := sol.NewTransaction([]sol.Instruction{memoInstruction([]byte("x"))}, sol.Hash{1}, sol.TransactionPayer(l.addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.sign(tx); err != nil {
		t.Fatal(err)
	}
	_, err = l.submit(context.Background(), "test", tx)
	if calls.Load() != 1 {
		t.Fatalf("%d calls for a permanent failure", calls.Load())
	}
	if !strings.Contains(err.Error(), "MissingRequiredSignature") || !errors.Is(err, settlement.ErrSignatures) {
		t.Fatalf("error %v", err)
	}
}
