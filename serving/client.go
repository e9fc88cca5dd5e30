package serving

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// Call sends examples to the service that provider serves and returns its
// outputs, one row per example, once it has checked that the provider
// signed them, for this request, with a row for each example. An answer
// other than CodeOK comes back as a *wire.ReplyError.
func Call(ctx context.Context, h host.Host, provider peer.ID, service string, examples [][]float32) ([][]float32, error) {
	req, err := json.Marshal(market.InferRequest{Service: service, Examples: examples})
	if err != nil {
		return nil, fmt.Errorf("infer %s: %w", service, err)
	}
	st, err := h.NewStream(ctx, provider, wire.InferProtocol)
	if err != nil {
		return nil, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	defer st.Close()
	// A cancel, not only a deadline, ends the call: the stream goes.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	deadline := time.Now().Add(callTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = st.SetDeadline(deadline)
	// The request goes out while the answer is awaited: a provider may
	// refuse a request from its length alone, and then reads no more of it.
	sent := make(chan error, 1)
	go func() { sent <- wire.WriteFrame(bufio.NewWriter(st), req) }()
	var ans Answer
	readErr := wire.ReadJSON(bufio.NewReader(st), maxAnswerBytes, &ans)
	var sendErr error
	select {
	case sendErr = <-sent:
	default:
		_ = st.Reset() // refused before the whole request was read
		sendErr = <-sent
	}
	if readErr != nil {
		_ = st.Reset()
		if sendErr != nil {
			return nil, fmt.Errorf("infer %s on %s: send: %w", service, provider, sendErr)
		}
		return nil, fmt.Errorf("infer %s on %s: read the answer: %w", service, provider, readErr)
	}
	if err := ans.Reply.Err(); err != nil {
		return nil, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	if ans.Result == nil {
		return nil, fmt.Errorf("infer %s on %s: an answer without a result", service, provider)
	}
	var res market.InferResult
	signer, err := ans.Result.Open(market.TypeInferResult, &res)
	if err != nil {
		return nil, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	if signer != provider {
		return nil, fmt.Errorf("infer %s on %s: %w: the answer is signed by %s", service, provider, market.ErrBadSignature, signer)
	}
	if err := res.Check(service, req, len(examples), 0); err != nil {
		return nil, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	if err := sameWidth(res.Outputs); err != nil {
		return nil, fmt.Errorf("infer %s on %s: %w", service, provider, err)
	}
	return res.Outputs, nil
}

// sameWidth fails unless every row has the same number of values, at
// least one.
func sameWidth(rows [][]float32) error {
	for i, row := range rows {
		if len(row) == 0 || len(row) != len(rows[0]) {
			return fmt.Errorf("%w: the answer's row %d has %d values, row 0 %d", market.ErrBadAnswer, i, len(row), len(rows[0]))
		}
	}
	return nil
}
