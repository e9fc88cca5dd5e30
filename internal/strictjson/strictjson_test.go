package strictjson

import (
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
		{`{"kind":"x"} {}`, "trailing data"},
		{`[1]`, "(top level): got JSON array, want an object"},
	}
	for _, tt := range tests {
		var v outer
		err := Decode([]byte(tt.in), &v)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Decode(%s) = %v, want success", tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Decode(%s) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}
