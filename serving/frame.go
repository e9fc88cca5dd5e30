package serving

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// A stream of InferProtocol carries any number of calls. Each request
// and each answer is one frame: a uvarint length, then
//
//	uvarint id | uvarint header length | header (JSON) | tensor
//
// The id is the caller's, unique among its calls open on the stream; the
// answer to a request carries its id, in whatever order the batches
// finish. Id 0 answers the stream itself: its last frame before the
// provider ends it. The tensor is header.Rows rows of header.Cols float32
// values, little-endian, row after row. A new field goes into a header.

// requestHeader is what a request says besides its examples.
type requestHeader struct {
	Service string `json:"service"`
	Rows    int    `json:"rows"`
	Cols    int    `json:"cols"`
	// Voucher pays for a priced call: a signed voucher of the caller's
	// budget with the provider (an encoded market envelope).
	Voucher []byte `json:"voucher,omitempty"`
}

// answerHeader is what an answer says besides its outputs: the reply
// and, when it is CodeOK, the outputs' shape, the signed batch, the
// call's index in it and its proof (market.CheckInferProof).
type answerHeader struct {
	Reply wire.Reply       `json:"reply"`
	Rows  int              `json:"rows,omitempty"`
	Cols  int              `json:"cols,omitempty"`
	Batch *market.Envelope `json:"batch,omitempty"`
	Index int              `json:"index,omitempty"`
	Proof [][]byte         `json:"proof,omitempty"`
	// Paid is, for a priced call, the cumulative amount the budget's
	// vouchers have promised the provider.
	Paid uint64 `json:"paid,omitempty"`
}

// maxHeaderBytes bounds a header of either side.
const maxHeaderBytes = 16 << 10

// maxAnswerBytes bounds an answer frame: a header and the outputs that
// fit the envelope bound, as before.
const maxAnswerBytes = market.MaxEnvelopeBytes + maxHeaderBytes

// errBadFrame: a frame that does not parse.
var errBadFrame = errors.New("bad frame")

// appendFrame appends one frame of id, header and tensor to buf: the
// tensor is rows, or raw when it is already encoded.
func appendFrame(buf []byte, id uint64, header any, rows [][]float32, raw []byte) ([]byte, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return buf, fmt.Errorf("encode header: %w", err)
	}
	n := len(raw)
	for _, r := range rows {
		n += 4 * len(r)
	}
	body := binary.AppendUvarint(nil, id)
	body = binary.AppendUvarint(body, uint64(len(h)))
	size := len(body) + len(h) + n
	buf = binary.AppendUvarint(buf, uint64(size))
	buf = append(buf, body...)
	buf = append(buf, h...)
	for _, r := range rows {
		buf = appendFloats(buf, r)
	}
	return append(buf, raw...), nil
}

func appendFloats(buf []byte, xs []float32) []byte {
	for _, v := range xs {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	return buf
}

// splitBody splits a frame's body into its id, header and tensor bytes.
func splitBody(body []byte) (id uint64, header, tensor []byte, err error) {
	id, n := binary.Uvarint(body)
	if n <= 0 {
		return 0, nil, nil, fmt.Errorf("%w: no id", errBadFrame)
	}
	body = body[n:]
	hl, n := binary.Uvarint(body)
	if n <= 0 || hl > maxHeaderBytes || hl > uint64(len(body)-n) {
		return id, nil, nil, fmt.Errorf("%w: header length", errBadFrame)
	}
	body = body[n:]
	return id, body[:hl], body[hl:], nil
}

// decodeRows reads rows x cols float32 values out of b, which must hold
// exactly that many, into rows that share one array.
func decodeRows(b []byte, rows, cols int) ([][]float32, error) {
	if rows < 0 || cols < 0 || (cols > 0 && rows > len(b)/4/cols) || len(b) != 4*rows*cols {
		return nil, fmt.Errorf("%w: %d bytes of values for %d rows of %d", errBadFrame, len(b), rows, cols)
	}
	all := make([]float32, rows*cols)
	for i := range all {
		all[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	out := make([][]float32, rows)
	for i := range out {
		out[i] = all[i*cols : (i+1)*cols : (i+1)*cols]
	}
	return out, nil
}

// decodeRequestHeader parses a request's header strictly: a caller's
// bytes are hostile until proved otherwise.
func decodeRequestHeader(b []byte) (requestHeader, error) {
	var h requestHeader
	if err := strictjson.Decode(b, &h); err != nil {
		return h, fmt.Errorf("%w: header: %v", errBadFrame, err)
	}
	return h, nil
}

// readFrameLen reads a frame's length and fails past limit before any
// of its body is read.
func readFrameLen(r *bufio.Reader, limit int) (int, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return int(min(n, math.MaxInt32)), fmt.Errorf("%w: %d bytes exceeds %d", wire.ErrFrameTooLarge, n, limit)
	}
	return int(n), nil
}

// readBody reads a frame body of n bytes into buf's storage, grown as the
// bytes come rather than for the length announced.
func readBody(r *bufio.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := io.ReadFull(r, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
