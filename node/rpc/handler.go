package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/node/api"
)

// Handler serves one method. params is the raw "params" member (nil when
// absent). A returned *api.Error reaches the client as it is; any other
// error becomes a CodeFailed error carrying its message.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Source starts a subscription. It returns a channel of events that it
// closes once ctx is done; the server sends each event as a notification.
type Source func(ctx context.Context, params json.RawMessage) (<-chan any, error)

// Method adapts a typed function to a Handler. Params are decoded strictly
// (see DecodeParams): repeated keys, unknown fields and wrong types are
// CodeInvalidParams errors naming the key.
func Method[P, R any](f func(context.Context, P) (R, error)) Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p P
		if err := DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return f(ctx, p)
	}
}

// NoParams adapts a function without parameters to a Handler. It accepts
// absent, null, {} or [] params and rejects anything else.
func NoParams[R any](f func(context.Context) (R, error)) Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		if err := CheckNoParams(raw); err != nil {
			return nil, err
		}
		return f(ctx)
	}
}

// CheckNoParams accepts absent, null, {} or [] params and rejects anything
// else with CodeInvalidParams.
func CheckNoParams(raw json.RawMessage) error {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", "{}", "[]":
		return nil
	}
	return api.Errorf(api.CodeInvalidParams, "invalid params: this method takes none")
}

// DecodeParams decodes by-name params into v, rejecting repeated keys and
// unknown fields at any depth. Names are case-sensitive: a key that differs
// from a field's name only in case is an unknown field.
func DecodeParams(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return api.Errorf(api.CodeInvalidParams, "invalid params: want an object of named parameters")
	}
	if err := strictjson.Check(raw, v); err != nil {
		return api.Errorf(api.CodeInvalidParams, "invalid params: %s", describeJSONError(err))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalidParams, "invalid params: %s", describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	var ke *strictjson.KeyError
	if errors.As(err, &ke) {
		switch {
		case ke.Duplicate:
			return fmt.Sprintf("duplicate key %q", ke.Path)
		case ke.Field != "":
			return fmt.Sprintf("unknown field %q (names are case-sensitive: %q)", ke.Path, ke.Field)
		}
		return fmt.Sprintf("unknown field %q", ke.Path)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %q: got JSON %s, want %s", field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// toError turns a handler error into a wire error.
func toError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	return &api.Error{Code: api.CodeFailed, Message: err.Error()}
}
