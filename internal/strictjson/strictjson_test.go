package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type inner struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
}

type outer struct {
	Kind   string            `json:"kind"`
	Items  []inner           `json:"items"`
	Env    map[string]string `json:"env"`
	Nested *inner            `json:"nested,omitempty"`
	Extra  json.RawMessage   `json:"extra,omitempty"`
	Any    any               `json:"any,omitempty"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for success
	}{
		{`{"kind":"x","items":[{"cid":"a","size":1}],"env":{"A":"b"},"nested":{"cid":"c"}}`, ""},
		{`{"kind":"x","colour":1}`, "colour: unknown field"},
		{`{"items":[{"cid":"a"},{"cid":"b","sise":2}]}`, "items[1].sise: unknown field"},
		{`{"nested":{"cid":"a","extra":true}}`, "nested.extra: unknown field"},
		{`{"items":[{"size":"big"}]}`, "items.size: got JSON string, want an integer"},
		{`{"env":{"A":3}}`, "env: got JSON number, want a string"},
		{`{"kind":`, "malformed JSON"},
		{`{"kind":"x",}`, "malformed JSON"},
		{`{"kind":"x"} {}`, "trailing data"},
		{`[1]`, "(top level): got JSON array, want an object"},

		// Repeated keys, which encoding/json resolves by letting the last win.
		{`{"kind":"x","kind":"y"}`, "kind: duplicate key"},
		{`{"kind":"x","\u006bind":"y"}`, "kind: duplicate key"},
		{`{"nested":null,"nested":null}`, "nested: duplicate key"},
		{`{"items":[{"cid":"a"},{"cid":"a","size":1,"cid":"b"}]}`, "items[1].cid: duplicate key"},
		{`{"env":{"A":"1","A":"2"}}`, "env.A: duplicate key"},
		{`{"extra":{"x":1,"y":{"z":1,"z":2}}}`, "extra.y.z: duplicate key"},
		{`{"any":[{"x":1},{"x":1,"x":2}]}`, "any[1].x: duplicate key"},

		// Names that encoding/json would match regardless of case.
		{`{"Kind":"x"}`, `Kind: unknown field (names are case-sensitive: "kind")`},
		{`{"items":[{"CID":"a"}]}`, `items[0].CID: unknown field (names are case-sensitive: "cid")`},
		{`{"nested":{"ſize":1}}`, `nested.ſize: unknown field (names are case-sensitive: "size")`},

		// Map keys and opaque values are not field names.
		{`{"env":{"A":"1","a":"2"}}`, ""},
		{`{"extra":{"Kind":1},"any":{"Kind":[1,2]}}`, ""},

		{`{"any":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ""},
		{`{"any":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`, "nested more than 10000 levels deep"},
	}
	for _, tt := range tests {
		var v outer
		err := Decode([]byte(tt.in), &v)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Decode(%.80s) = %v, want success", tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Decode(%.80s) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestDecodeKeepsLastWinsOut(t *testing.T) {
	// What plain encoding/json makes of the inputs Decode refuses: each
	// would silently pick one of two values.
	for _, in := range []string{`{"kind":"x","kind":"y"}`, `{"kind":"x","Kind":"y"}`, `{"kind":"x","KİND":"y"}`} {
		var plain outer
		if err := json.Unmarshal([]byte(in), &plain); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v", in, err)
		}
		var strict outer
		if err := Decode([]byte(in), &strict); err == nil {
			t.Errorf("Decode(%s) succeeded with kind %q; encoding/json picked %q", in, strict.Kind, plain.Kind)
		}
	}
}

func TestCheckDuplicates(t *testing.T) {
	tests := []struct {
		in       string
		wantPath string // "" for success
	}{
		{`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}`, ""},
		{`{"a":1,"A":1}`, ""},
		{`[{"a":1,"a":1}]`, "[0].a"},
		{`{"a":{"b":[1,{"c":1,"c":2}]}}`, "a.b[1].c"},
		{`{"a.b":1,"a.b":2}`, "a.b"},
		{`{"x":{"":1,"":2}}`, `x.""`},
	}
	for _, tt := range tests {
		err := CheckDuplicates([]byte(tt.in))
		var ke *KeyError
		switch {
		case tt.wantPath == "":
			if err != nil {
				t.Errorf("CheckDuplicates(%s) = %v, want nil", tt.in, err)
			}
		case !errors.As(err, &ke) || !ke.Duplicate || ke.Path != tt.wantPath:
			t.Errorf("CheckDuplicates(%s) = %#v, want a duplicate at %s", tt.in, err, tt.wantPath)
		}
	}
	if err := CheckDuplicates([]byte(`{"a":1,}`)); err == nil || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("CheckDuplicates of malformed JSON = %v, want a malformed JSON error", err)
	}
}

// FuzzDecode checks that Decode never panics, that what it accepts is valid
// JSON without repeated keys, and that a decoded value, encoded again,
// decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"x","items":[{"cid":"a","size":1}],"env":{"A":"b"},"nested":{"cid":"c"}}`,
		`{"kind":"x","kind":"y"}`,
		`{"items":[{"cid":"a","CID":"b"}]}`,
		`{"env":{"A":"1","a":"2"},"extra":{"x":[1,2,{"y":null}]},"any":{"z":1.5e3}}`,
		`{"any":"\u00e9\ud83d\ude00","extra":"\u0000"}`,
		`{"nested":{"size":-0}}`,
		`[1]`,
		`{"kind":`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v outer
		if err := Decode(data, &v); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted invalid JSON %q", data)
		}
		if err := CheckDuplicates(data); err != nil {
			t.Fatalf("Decode accepted %q, which CheckDuplicates refuses: %v", data, err)
		}
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		var again outer
		if err := Decode(enc, &again); err != nil {
			t.Fatalf("Decode(%s), re-encoded from %q: %v", enc, data, err)
		}
		enc2, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("encode %+v: %v", again, err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the value: %s, then %s", enc, enc2)
		}
	})
}

// FuzzCheckDuplicates checks that CheckDuplicates never panics and accepts
// only valid JSON.
func FuzzCheckDuplicates(f *testing.F) {
	for _, seed := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[]}},{"a":1}]`, `{"a":1,}`, `"x"`, `[1,]`, `{"a" 1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := CheckDuplicates(data); err == nil && !json.Valid(data) {
			t.Fatalf("CheckDuplicates accepted invalid JSON %q", data)
		}
	})
}
