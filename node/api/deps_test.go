package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoLibp2p keeps the client light: the API package must not pull in
// libp2p or the IPFS libraries.
func TestNoLibp2p(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/cyxwiz/cyxwiz/node/api").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "libp2p") || strings.Contains(dep, "github.com/ipfs/") || strings.Contains(dep, "multiformats") {
			t.Errorf("package api depends on %s", dep)
		}
	}
}
