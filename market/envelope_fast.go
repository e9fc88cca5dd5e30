package market

import (
	"bytes"
	"encoding/base64"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// parseCanonical decodes an envelope in the exact form Marshal writes:
// {"type":"T","signer":"S","payload":"B64","sig":"B64"}, with no escapes
// in T and S. It reports false for anything else, which the general
// decoder then reads: it is a fast path for the envelopes every node
// sends, not a second grammar. A fuzz test holds it to encoding/json.
func parseCanonical(data []byte) (Envelope, bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"type":"`))
	if !ok {
		return Envelope{}, false
	}
	typ, rest, ok := plainString(rest)
	if !ok {
		return Envelope{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"signer":"`)); !ok {
		return Envelope{}, false
	}
	signer, rest, ok := plainString(rest)
	if !ok {
		return Envelope{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"payload":"`)); !ok {
		return Envelope{}, false
	}
	payload, rest, ok := base64String(rest)
	if !ok {
		return Envelope{}, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"sig":"`)); !ok {
		return Envelope{}, false
	}
	sig, rest, ok := base64String(rest)
	if !ok || string(rest) != "}" {
		return Envelope{}, false
	}
	return Envelope{Type: string(typ), Signer: string(signer), Payload: payload, Signature: sig}, true
}

// plainString reads a JSON string body up to its closing quote: printable
// ASCII with no escape, as types and peer IDs are.
func plainString(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[:i], b[i+1:], true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// base64String reads a JSON string of standard base64, as encoding/json
// writes a []byte, and decodes it; a null or empty string is not taken,
// so that the general decoder keeps their meaning.
func base64String(b []byte) (out, rest []byte, ok bool) {
	end := bytes.IndexByte(b, '"')
	if end <= 0 {
		return nil, nil, false
	}
	out = make([]byte, base64.StdEncoding.DecodedLen(end))
	n, err := base64.StdEncoding.Strict().Decode(out, b[:end])
	if err != nil {
		return nil, nil, false
	}
	return out[:n], b[end+1:], true
}

// signerKeys caches the public keys of signers: decoding a peer ID and
// its key costs more than a map lookup, and the same peers sign most
// messages a node sees.
var signerKeys = struct {
	sync.Mutex
	m map[string]signerEntry
}{m: map[string]signerEntry{}}

type signerEntry struct {
	id  peer.ID
	pub crypto.PubKey
}

// maxSignerKeys bounds the cache; past it, it starts again.
const maxSignerKeys = 4096

// signerKey returns the peer ID of signer and its public key.
func signerKey(signer string) (peer.ID, crypto.PubKey, error) {
	signerKeys.Lock()
	e, ok := signerKeys.m[signer]
	signerKeys.Unlock()
	if ok {
		return e.id, e.pub, nil
	}
	id, err := peer.Decode(signer)
	if err != nil {
		return "", nil, err
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return "", nil, err
	}
	signerKeys.Lock()
	if len(signerKeys.m) >= maxSignerKeys {
		signerKeys.m = map[string]signerEntry{}
	}
	signerKeys.m[signer] = signerEntry{id: id, pub: pub}
	signerKeys.Unlock()
	return id, pub, nil
}
