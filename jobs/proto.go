package jobs

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Topic and protocol identifiers of the market.
const (
	// Topic carries signed job announcements.
	Topic = "/cyxwiz/jobs/1"
	// BidProtocol: provider to requester, one signed bid.
	BidProtocol protocol.ID = "/cyxwiz/market/bid/1.0.0"
	// AwardProtocol: requester to provider, a signed award answered by a
	// signed ack.
	AwardProtocol protocol.ID = "/cyxwiz/market/award/1.0.0"
	// ResultProtocol: provider to requester, the signed result.
	ResultProtocol protocol.ID = "/cyxwiz/market/result/1.0.0"
	// LogProtocol: provider to requester, the job's output as it is written.
	LogProtocol protocol.ID = "/cyxwiz/market/logs/1.0.0"
	// CancelProtocol: requester to provider, stop a job.
	CancelProtocol protocol.ID = "/cyxwiz/market/cancel/1.0.0"
)

// MetricsStream is the log stream that carries a train job's metrics as
// JSON lines: sent live like output, kept as the metrics output rather
// than in the log.
const MetricsStream = "metrics"

// writeEnvelope sends one length-prefixed envelope.
func writeEnvelope(w *bufio.Writer, env market.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	return writeFrame(w, data)
}

func writeFrame(w *bufio.Writer, data []byte) error {
	var buf [binary.MaxVarintLen64]byte
	if _, err := w.Write(buf[:binary.PutUvarint(buf[:], uint64(len(data)))]); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one length-prefixed frame of at most limit bytes.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", n, limit)
	}
	data := make([]byte, n)
	_, err = io.ReadFull(r, data)
	return data, err
}

// readEnvelope reads one envelope and opens it as typ into v.
func readEnvelope(r *bufio.Reader, typ string, v any) (market.Envelope, error) {
	data, err := readFrame(r, market.MaxEnvelopeBytes)
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
