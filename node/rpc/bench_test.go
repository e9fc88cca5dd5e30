package rpc

import (
	"context"
	"strings"
	"testing"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// BenchmarkCall measures one JSON-RPC call over loopback HTTP through the
// guards and the typed client.
func BenchmarkCall(b *testing.B) {
	_, hs := newTestServer(b, 1<<20)
	c := api.NewClient(strings.TrimPrefix(hs.URL, "http://"), testToken)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var out string
		if err := c.Call(ctx, "test.echo", echoParams{Text: "x", Times: 1}, &out); err != nil {
			b.Fatal(err)
		}
	}
}
