package node

import (
	"os"
	"testing"

	"github.com/cyxwiz/cyxwiz/compute/train"
)

// TestMain lets this test binary serve as the train executor's CPU
// worker, as the cyxwiz binary does, and removes the shared WASM cache.
func TestMain(m *testing.M) {
	train.ServeWorkerIfAsked()
	code := m.Run()
	if wasmCacheDir != "" {
		os.RemoveAll(wasmCacheDir)
	}
	os.Exit(code)
}
