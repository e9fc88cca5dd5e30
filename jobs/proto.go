package jobs

import (
	"bufio"
	"fmt"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MetricsStream is the log stream that carries a train job's metrics as
// JSON lines: sent live like output, kept as the metrics output rather
// than in the log.
const MetricsStream = "metrics"

// writeEnvelope sends one envelope as a frame.
func writeEnvelope(w *bufio.Writer, env market.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	return wire.WriteFrame(w, data)
}

// readEnvelope reads one envelope and opens it as typ into v.
func readEnvelope(r *bufio.Reader, typ string, v any) (market.Envelope, error) {
	data, err := wire.ReadFrame(r, market.MaxEnvelopeBytes)
	if err != nil {
		return market.Envelope{}, err
	}
	env, err := market.ParseEnvelope(data)
	if err != nil {
		return market.Envelope{}, err
	}
	if _, err := env.Open(typ, v); err != nil {
		return market.Envelope{}, err
	}
	return env, nil
}

// signedMessage is the one envelope a stream handler takes, its signer,
// and the writer for the answer.
type signedMessage struct {
	env    market.Envelope
	signer peer.ID
	w      *bufio.Writer
}

// readSigned sets the deadline of a stream's whole exchange and reads the
// one envelope the stream's handler takes, opened as typ into v.
func readSigned(s network.Stream, timeout time.Duration, typ string, v any) (signedMessage, error) {
	s.SetDeadline(time.Now().Add(timeout))
	env, err := readEnvelope(bufReader(s), typ, v)
	if err != nil {
		return signedMessage{}, err
	}
	signer, err := peer.Decode(env.Signer)
	if err != nil {
		return signedMessage{}, fmt.Errorf("signer: %w", err)
	}
	return signedMessage{env: env, signer: signer, w: bufWriter(s)}, nil
}
