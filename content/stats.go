package content

import (
	"sync/atomic"
	"time"
)

// Stats are the store's transfer counts since it opened, by transport:
// DAG streams (this node's own protocol) and bitswap.
type Stats struct {
	// StreamBlocksIn and StreamBytesIn: blocks received over DAG streams.
	StreamBlocksIn, StreamBytesIn uint64
	// StreamBlocksOut and StreamBytesOut: blocks served over DAG streams.
	StreamBlocksOut, StreamBytesOut uint64
	// BitswapBlocksIn and BitswapBytesIn: blocks received over bitswap,
	// duplicates included.
	BitswapBlocksIn, BitswapBytesIn uint64
	// BitswapBlocksOut and BitswapBytesOut: blocks sent over bitswap.
	BitswapBlocksOut, BitswapBytesOut uint64
}

// counters are the store's own transfer counts.
type counters struct {
	streamBlocksIn, streamBytesIn   atomic.Uint64
	streamBlocksOut, streamBytesOut atomic.Uint64
}

// Stats returns the store's transfer counts.
func (s *Store) Stats() Stats {
	st := Stats{
		StreamBlocksIn: s.counts.streamBlocksIn.Load(), StreamBytesIn: s.counts.streamBytesIn.Load(),
		StreamBlocksOut: s.counts.streamBlocksOut.Load(), StreamBytesOut: s.counts.streamBytesOut.Load(),
	}
	if bs, err := s.bitswap.Stat(); err == nil {
		st.BitswapBlocksIn, st.BitswapBytesIn = bs.BlocksReceived, bs.DataReceived
		st.BitswapBlocksOut, st.BitswapBytesOut = bs.BlocksSent, bs.DataSent
	}
	return st
}

// observeFetch reports one fetch to Params.ObserveFetch.
func (s *Store) observeFetch(start time.Time, err error) {
	if s.onFetch != nil {
		s.onFetch(time.Since(start), err)
	}
}
