package kernels

import (
	"strings"
	"testing"
)

// TestPTX checks that the embedded module targets sm_80 and defines every
// kernel in Names, so that a stale kernels.ptx is caught without a GPU.
func TestPTX(t *testing.T) {
	if !strings.Contains(PTX, "\n.target sm_80") {
		t.Errorf("PTX does not target sm_80")
	}
	for _, name := range Names {
		if !strings.Contains(PTX, ".visible .entry "+name+"(") {
			t.Errorf("PTX has no kernel %q", name)
		}
	}
	if n := strings.Count(PTX, ".visible .entry "); n != len(Names) {
		t.Errorf("PTX has %d kernels, Names lists %d", n, len(Names))
	}
	if strings.Contains(PTX, "fma.rn.f32") {
		t.Errorf("PTX fuses float multiply-adds; build it with -ffp-contract=off")
	}
}
