package node

import (
	"os"
	"testing"

	"github.com/cyxwiz/cyxwiz/compute/train"
)

// TestMain lets this test binary serve as the train executor's CPU
// worker, as the cyxwiz binary does.
func TestMain(m *testing.M) {
	train.ServeWorkerIfAsked()
	os.Exit(m.Run())
}
