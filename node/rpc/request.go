package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// request is one request of a message, decoded: a call to make, or the
// error that answers it instead.
type request struct {
	req api.Request
	// id is the id to answer with; nil means no answer (a notification).
	id json.RawMessage
	// err, when set, answers the request instead of a call.
	err *api.Error
}

// members are the names of a request object's members.
var members = []string{"jsonrpc", "id", "method", "params"}

// decodeMessage turns one HTTP body or WebSocket message into its requests.
// batch reports whether the message was a batch, whose replies go out as an
// array; a message refused as a whole is one request that carries the error.
func decodeMessage(msg []byte) (reqs []request, batch bool) {
	// Only JSON's own white space: bytes.TrimSpace would also take \v and
	// Unicode spaces, which are not JSON.
	if start := bytes.TrimLeft(msg, " \t\r\n"); len(start) == 0 || start[0] != '[' {
		return []request{decodeRequest(msg)}, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(msg, &elems); err != nil {
		return []request{refused(nil, api.CodeParseError, "parse error: "+describeJSONError(err))}, false
	}
	if len(elems) == 0 {
		return []request{refused(nil, api.CodeInvalidRequest, "invalid request: empty batch")}, false
	}
	if len(elems) > MaxBatch {
		return []request{refused(nil, api.CodeInvalidRequest, fmt.Sprintf("invalid request: batch of %d exceeds %d", len(elems), MaxBatch))}, false
	}
	reqs = make([]request, len(elems))
	for i, e := range elems {
		reqs[i] = decodeRequest(e)
	}
	return reqs, true
}

// decodeRequest decodes one request object. Its members are matched by
// exact name: a repeated member, or one whose name differs from a member's
// only in case, makes an invalid request, as does a repeated key inside any
// member but params; a repeated key inside params makes invalid params.
func decodeRequest(msg []byte) request {
	var req api.Request
	if err := json.Unmarshal(msg, &req); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || !json.Valid(msg) {
			return refused(nil, api.CodeParseError, "parse error: "+describeJSONError(err))
		}
		return refused(nil, api.CodeInvalidRequest, "invalid request: "+describeJSONError(err))
	}
	if member, problem := checkMembers(msg); problem != "" {
		id := validIDOrNull(req.ID)
		if strings.EqualFold(member, "id") {
			id = nil // which of two ids is meant is not known
		}
		return refused(id, api.CodeInvalidRequest, "invalid request: "+problem)
	}
	if req.JSONRPC != api.Version || req.Method == "" || !validID(req.ID) {
		return refused(validIDOrNull(req.ID), api.CodeInvalidRequest, `invalid request: need "jsonrpc": "2.0", a "method" and an id that is a string, number or null`)
	}
	if len(req.Params) > 0 {
		if err := strictjson.CheckDuplicates(req.Params); err != nil {
			return request{req: req, id: req.ID, err: api.Errorf(api.CodeInvalidParams, "invalid params: %s", describeJSONError(err))}
		}
	}
	return request{req: req, id: req.ID}
}

// checkMembers looks at the members of a request object that json.Unmarshal
// has accepted. It returns the first refused member's name and what is
// wrong with it; problem is "" when every member is fine.
func checkMembers(msg []byte) (member, problem string) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", "" // not an object: refused later for lack of a method
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", describeJSONError(err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return key, fmt.Sprintf("duplicate member %q", key)
		}
		seen[key] = true
		for _, m := range members {
			if key != m && strings.EqualFold(key, m) {
				return key, fmt.Sprintf("unknown member %q (names are case-sensitive: %q)", key, m)
			}
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return key, describeJSONError(err)
		}
		if key == "params" {
			continue // refused as invalid params, see decodeRequest
		}
		var ke *strictjson.KeyError
		if err := strictjson.CheckDuplicates(value); errors.As(err, &ke) {
			path := key + "." + ke.Path
			if strings.HasPrefix(ke.Path, "[") {
				path = key + ke.Path
			}
			return key, fmt.Sprintf("duplicate key %q", path)
		}
	}
	return "", ""
}

// refused is a request answered by an error. A refused request is answered
// even without an id: it may not have been meant as a notification.
func refused(id json.RawMessage, code int, msg string) request {
	if id == nil {
		id = json.RawMessage("null")
	}
	return request{id: id, err: &api.Error{Code: code, Message: msg}}
}
