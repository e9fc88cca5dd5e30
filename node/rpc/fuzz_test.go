package rpc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// FuzzDecodeMessage checks the request decoder on any message: it never
// panics, every request it accepts is valid and unambiguous (a plain
// exact-name reading of the same bytes finds the same method, id and
// params), every refusal carries a JSON-RPC error code, and every reply it
// calls for can be encoded.
func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a","times":2}}`,
		`{"jsonrpc":"2.0","method":"test.echo"}`,
		`{"jsonrpc":"2.0","id":"x","method":"m","method":"n"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"m","method":"n"}`,
		`{"jsonrpc":"2.0","id":null,"method":"m","params":{"a":{"b":[{"c":1,"c":2}]}}}`,
		`{"jsonrpc":"2.0","id":-1.5e3,"method":"m","extra":[{"a":1,"a":1}]}`,
		`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b","params":{"x":1,"x":2}},7,[]]`,
		`[]`,
		`[`,
		`{"jsonrpc":"2.0","id":{},"method":"m"}`,
		` null `,
		`"\u006dethod"`,
		`{"jsonrpc":"2.0","id":1,"method":"m","\u006dethod":"n"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		reqs, batch := decodeMessage(msg)
		if len(reqs) == 0 || len(reqs) > MaxBatch {
			t.Fatalf("%d requests from %q", len(reqs), msg)
		}
		elems := []json.RawMessage{msg}
		if batch {
			elems = nil
			if err := json.Unmarshal(msg, &elems); err != nil || len(elems) != len(reqs) {
				t.Fatalf("batch of %d from %q, which holds %d elements (%v)", len(reqs), msg, len(elems), err)
			}
		}
		for i, r := range reqs {
			switch {
			case r.err == nil:
				checkAccepted(t, elems[i], r)
			case r.err.Code == api.CodeParseError, r.err.Code == api.CodeInvalidRequest:
				if r.id == nil {
					t.Fatalf("refused request %q gets no reply", elems[i])
				}
			case r.err.Code == api.CodeInvalidParams:
				if !bytes.Equal(r.id, r.req.ID) {
					t.Fatalf("invalid params of %q answered with id %s, want %s", elems[i], r.id, r.req.ID)
				}
			default:
				t.Fatalf("request %q refused with code %d", elems[i], r.err.Code)
			}
			if r.id != nil {
				encode(&api.Response{JSONRPC: api.Version, ID: r.id, Error: r.err})
			}
		}
	})
}

// checkAccepted compares an accepted request with what a plain reading of
// its bytes by exact member names gives.
func checkAccepted(t *testing.T, elem []byte, r request) {
	t.Helper()
	if r.req.JSONRPC != api.Version || r.req.Method == "" || !validID(r.req.ID) || !bytes.Equal(r.id, r.req.ID) {
		t.Fatalf("accepted %q as %+v with id %s", elem, r.req, r.id)
	}
	var plain map[string]json.RawMessage
	if err := json.Unmarshal(elem, &plain); err != nil {
		t.Fatalf("accepted %q, which is not an object: %v", elem, err)
	}
	for key := range plain {
		for _, m := range members {
			if key != m && strings.EqualFold(key, m) {
				t.Fatalf("accepted %q with member %q", elem, key)
			}
		}
	}
	var method string
	if err := json.Unmarshal(plain["method"], &method); err != nil || method != r.req.Method {
		t.Fatalf("accepted %q as method %q; its method member reads %q (%v)", elem, r.req.Method, method, err)
	}
	if !bytes.Equal(plain["id"], r.req.ID) || !bytes.Equal(plain["params"], r.req.Params) {
		t.Fatalf("accepted %q with id %s and params %s; its members read %s and %s", elem, r.req.ID, r.req.Params, plain["id"], plain["params"])
	}
	if len(r.req.Params) > 0 {
		if err := strictjson.CheckDuplicates(r.req.Params); err != nil {
			t.Fatalf("accepted %q, whose params hold %v", elem, err)
		}
	}
}
