// Package ledgertest starts the local Solana ledger for a test.
package ledgertest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/settlement/localledger"
)

// Start starts a local ledger that stops when the test ends. Under -short
// it skips the test: the short suite needs no Node.js. Where Node.js or the
// ledger's npm packages are missing it skips the test with the install
// hint, except under CI (the environment variable CI set), where it fails
// it: CI must never skip the settlement tests.
func Start(t testing.TB) *localledger.Ledger {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the tests on the local ledger run in the full suite")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	l, err := localledger.Start(ctx, localledger.Options{Logger: logger})
	if errors.Is(err, localledger.ErrUnavailable) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (under CI the settlement tests must run, not skip)", err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// testWriter writes log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
