package solana

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement"
	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/jsonrpc"
	"github.com/gagliardetto/solana-go/rpc/ws"
)

// Errors of this ledger besides the settlement ones.
var (
	// ErrUnconfirmed: a transaction was sent but not seen confirmed in
	// time. It may still land; calling the same method again is safe.
	ErrUnconfirmed = errors.New("transaction not confirmed in time")
	// ErrStale: the ledger moved on since the payout was proposed: the
	// proposer's durable nonce was used by another of its payouts, or
	// someone sent more into the vault. Propose again.
	ErrStale = errors.New("payout is stale")
)

// Retry policy for RPC requests that fail for transient reasons.
const (
	maxAttempts  = 6
	firstBackoff = 150 * time.Millisecond
	maxBackoff   = 3 * time.Second
)

// rpcError is a JSON-RPC error, readably formatted.
type rpcError struct {
	method string
	err    *jsonrpc.RPCError
}

func (e *rpcError) Error() string {
	msg := fmt.Sprintf("%s: rpc error %d: %s", e.method, e.err.Code, e.err.Message)
	if e.err.Data != nil {
		if d, ok := e.err.Data.(map[string]any); ok {
			if v := d["err"]; v != nil {
				b, _ := json.Marshal(v)
				msg += "; err " + string(b)
			}
			if logs, ok := d["logs"].([]any); ok && len(logs) > 0 {
				var ls []string
				for _, l := range logs[max(0, len(logs)-4):] {
					ls = append(ls, fmt.Sprint(l))
				}
				msg += "; logs: " + strings.Join(ls, " | ")
			}
		}
	}
	return msg
}

func (e *rpcError) Unwrap() error { return e.err }

// retryable says whether a failed request may succeed when repeated:
// transport failures, overload and an unhealthy or lagging node.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, rpc.ErrNotFound) {
		return false
	}
	var re *jsonrpc.RPCError
	if errors.As(err, &re) {
		switch re.Code {
		case -32005, -32004, -32014, -32016, -32603: // node unhealthy or behind, block or slot not yet available, internal
			return true
		}
		return false
	}
	var he *jsonrpc.HTTPError
	if errors.As(err, &he) {
		return he.Code == 429 || he.Code >= 500
	}
	return true
}

// call runs one RPC request with the per-request timeout, repeating it with
// exponential backoff while it fails for transient reasons.
func (l *Ledger) call(ctx context.Context, method string, f func(ctx context.Context) error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var re *jsonrpc.RPCError
		if errors.As(err, &re) {
			err = &rpcError{method: method, err: re}
		} else {
			err = fmt.Errorf("%s: %w", method, err)
		}
		if ctx.Err() != nil || attempt == maxAttempts || !retryable(err) {
			return err
		}
		l.log.Debug("rpc request failed, retrying", "method", method, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (after %w)", method, ctx.Err(), err)
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// account reads an account; nil when it does not exist.
func (l *Ledger) account(ctx context.Context, key sol.PublicKey) (*rpc.Account, error) {
	var out *rpc.Account
	err := l.call(ctx, "getAccountInfo", func(ctx context.Context) error {
		res, err := l.rpc.GetAccountInfoWithOpts(ctx, key, &rpc.GetAccountInfoOpts{Encoding: sol.EncodingBase64, Commitment: l.cfg.Commitment})
		if errors.Is(err, rpc.ErrNotFound) {
			out = nil
			return nil
		}
		if err != nil {
			return err
		}
		out = res.Value
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read account %s: %w", key, err)
	}
	if out != nil && (out.Data == nil || out.Lamports == 0) {
		return nil, nil
	}
	return out, nil
}

// rent returns the rent-exempt minimum for an account of size bytes.
func (l *Ledger) rent(ctx context.Context, size uint64) (uint64, error) {
	l.mu.Lock()
	v, ok := l.rents[size]
	l.mu.Unlock()
	if ok {
		return v, nil
	}
	err := l.call(ctx, "getMinimumBalanceForRentExemption", func(ctx context.Context) (err error) {
		v, err = l.rpc.GetMinimumBalanceForRentExemption(ctx, size, l.cfg.Commitment)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("rent of %d bytes: %w", size, err)
	}
	l.mu.Lock()
	l.rents[size] = v
	l.mu.Unlock()
	return v, nil
}

// NativeBalance returns owner's lamports, which pay the fees. It implements
// settlement.NativeBalancer.
func (l *Ledger) NativeBalance(ctx context.Context, owner string) (uint64, error) {
	o, err := sol.PublicKeyFromBase58(owner)
	if err != nil {
		return 0, fmt.Errorf("native balance: owner %q: %w", owner, err)
	}
	return l.lamports(ctx, o)
}

func (l *Ledger) lamports(ctx context.Context, key sol.PublicKey) (uint64, error) {
	var v uint64
	err := l.call(ctx, "getBalance", func(ctx context.Context) error {
		res, err := l.rpc.GetBalance(ctx, key, l.cfg.Commitment)
		if err != nil {
			return err
		}
		v = res.Value
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("balance of %s: %w", key, err)
	}
	return v, nil
}

func (l *Ledger) blockhash(ctx context.Context) (sol.Hash, error) {
	var h sol.Hash
	err := l.call(ctx, "getLatestBlockhash", func(ctx context.Context) error {
		res, err := l.rpc.GetLatestBlockhash(ctx, l.cfg.Commitment)
		if err != nil {
			return err
		}
		if res.Value == nil {
			return errors.New("empty answer")
		}
		h = res.Value.Blockhash
		return nil
	})
	return h, err
}

// LedgerTime returns the cluster's clock: the Clock sysvar's Unix
// timestamp, by which refund deadlines are judged. It implements
// settlement.LedgerClock.
func (l *Ledger) LedgerTime(ctx context.Context) (time.Time, error) {
	a, err := l.account(ctx, sol.SysVarClockPubkey)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the cluster clock: %w", err)
	}
	if a == nil || len(a.Data.GetBinary()) < 40 {
		return time.Time{}, errors.New("read the cluster clock: no Clock sysvar")
	}
	ts := int64(binary.LittleEndian.Uint64(a.Data.GetBinary()[32:40]))
	return time.Unix(ts, 0), nil
}

// decimals returns a mint's decimals, checking that the mint belongs to the
// classic Token program (Token-2022 extensions such as a permanent
// delegate could undo the escrow).
func (l *Ledger) decimals(ctx context.Context, mint sol.PublicKey) (uint8, error) {
	if mint.Equals(nativeMint) {
		return nativeDecimals, nil
	}
	l.mu.Lock()
	d, ok := l.mintDecimals[mint]
	l.mu.Unlock()
	if ok {
		return d, nil
	}
	a, err := l.account(ctx, mint)
	if err != nil {
		return 0, err
	}
	if a == nil {
		return 0, fmt.Errorf("%w: no mint %s", settlement.ErrInvalidTerms, mint)
	}
	data := a.Data.GetBinary()
	if !a.Owner.Equals(sol.TokenProgramID) || len(data) != MintSize || data[45] != 1 {
		return 0, fmt.Errorf("%w: %s is not an initialized mint of the Token program", settlement.ErrInvalidTerms, mint)
	}
	d = data[44]
	l.mu.Lock()
	l.mintDecimals[mint] = d
	l.mu.Unlock()
	return d, nil
}

// txFailure maps a failed transaction's error and logs onto the settlement
// errors where one fits.
func txFailure(err error) error {
	text := err.Error()
	var sentinel error
	switch {
	case strings.Contains(text, "MissingRequiredSignature"):
		sentinel = settlement.ErrSignatures
	case strings.Contains(text, "BlockhashNotFound"):
		sentinel = ErrStale
	case strings.Contains(text, "nsufficient funds"), strings.Contains(text, "insufficient lamports"),
		strings.Contains(text, "InsufficientFunds"), strings.Contains(text, "AccountNotFound"):
		sentinel = settlement.ErrFunds
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// submit sends a signed transaction and waits until it is confirmed at
// the ledger's commitment. Sending is repeated on transient failures: the
// same bytes have the same signature, so a repeat cannot pay twice.
func (l *Ledger) submit(ctx context.Context, what string, tx *sol.Transaction) (sol.Signature, error) {
	sig := tx.Signatures[0]
	err := l.call(ctx, "sendTransaction", func(ctx context.Context) error {
		_, err := l.rpc.SendTransactionWithOpts(ctx, tx, rpc.TransactionOpts{PreflightCommitment: l.cfg.Commitment})
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "AlreadyProcessed") || strings.Contains(err.Error(), "already been processed") {
			if done, ferr := l.landed(ctx, sig); ferr == nil && done {
				return sig, nil
			}
		}
		return sig, fmt.Errorf("%s: %w", what, txFailure(err))
	}
	l.sent.Add(1)
	l.log.Debug("transaction sent", "what", what, "signature", sig)
	if err := l.confirm(ctx, sig); err != nil {
		return sig, fmt.Errorf("%s: %w", what, err)
	}
	l.log.Debug("transaction confirmed", "what", what, "signature", sig)
	return sig, nil
}

// status returns a signature's status; nil when the ledger does not know it.
func (l *Ledger) status(ctx context.Context, sig sol.Signature, history bool) (*rpc.SignatureStatusesResult, error) {
	var st *rpc.SignatureStatusesResult
	err := l.call(ctx, "getSignatureStatuses", func(ctx context.Context) error {
		res, err := l.rpc.GetSignatureStatuses(ctx, history, sig)
		if errors.Is(err, rpc.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Value) > 0 {
			st = res.Value[0]
		}
		return nil
	})
	return st, err
}

// reached says whether a status meets the ledger's commitment.
func (l *Ledger) reached(st *rpc.SignatureStatusesResult) bool {
	switch st.ConfirmationStatus {
	case rpc.ConfirmationStatusFinalized:
		return true
	case rpc.ConfirmationStatusConfirmed:
		return l.cfg.Commitment != rpc.CommitmentFinalized
	case rpc.ConfirmationStatusProcessed:
		return l.cfg.Commitment == rpc.CommitmentProcessed
	}
	return st.Confirmations == nil // rooted
}

// landed says whether a transaction succeeded on the ledger.
func (l *Ledger) landed(ctx context.Context, sig sol.Signature) (bool, error) {
	st, err := l.status(ctx, sig, true)
	if err != nil || st == nil {
		return false, err
	}
	return st.Err == nil && l.reached(st), nil
}

// confirm waits until a signature's status reaches the commitment, the
// transaction fails, or the timeout passes. It polls getSignatureStatuses;
// with a PubSub endpoint, a signatureSubscribe notification also wakes it,
// and it polls less often.
func (l *Ledger) confirm(ctx context.Context, sig sol.Signature) error {
	deadline := time.Now().Add(l.cfg.Timeout)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the subscription
	wake := l.subscribe(ctx, sig)
	wait, most := 20*time.Millisecond, 500*time.Millisecond
	if wake != nil {
		most = 3 * time.Second
	}
	for {
		st, err := l.status(ctx, sig, false)
		if err != nil {
			return fmt.Errorf("confirm %s: %w", sig, err)
		}
		if st != nil && st.Err != nil {
			b, _ := json.Marshal(st.Err)
			return fmt.Errorf("transaction %s failed: %w", sig, txFailure(errors.New(string(b))))
		}
		if st != nil && l.reached(st) {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: %s after %v; calling again is safe", ErrUnconfirmed, sig, l.cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("confirm %s: %w", sig, ctx.Err())
		case <-wake:
			wake = nil
		case <-time.After(min(wait, left)):
		}
		wait = min(2*wait, most)
	}
}

// subscribe asks the PubSub endpoint to notify when sig reaches the
// commitment. The channel closes on the notification; it is nil when there
// is no endpoint or the subscription failed (polling alone then serves).
func (l *Ledger) subscribe(ctx context.Context, sig sol.Signature) <-chan struct{} {
	if l.cfg.WS == "" {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, min(l.cfg.Timeout, 10*time.Second))
	c, err := ws.Connect(dctx, l.cfg.WS)
	cancel()
	if err != nil {
		l.log.Debug("pubsub unavailable, polling", "error", err)
		return nil
	}
	sub, err := c.SignatureSubscribe(sig, l.cfg.Commitment)
	if err != nil {
		c.Close()
		l.log.Debug("signatureSubscribe failed, polling", "error", err)
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer c.Close()
		defer sub.Unsubscribe()
		if _, err := sub.Recv(ctx); err == nil {
			close(done)
		}
	}()
	return done
}
