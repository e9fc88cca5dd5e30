package jobs

import (
	"bufio"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
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
