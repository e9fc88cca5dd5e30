package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9464", true},
		{"127.0.0.2:9464", true},
		{"[::1]:9464", true},
		{"localhost:9464", true},
		{"0.0.0.0:9464", false},
		{":9464", false},
		{"[::]:9464", false},
		{"10.0.0.1:9464", false},
		{"example.com:9464", false},
		{"127.0.0.1", false},
	} {
		if got := Loopback(tc.addr); got != tc.want {
			t.Errorf("Loopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// Two nodes in one process each have a registry of their own.
func TestRegistryPerNode(t *testing.T) {
	a, b := New("1"), New("1")
	a.Jobs().AuctionOpened()
	if got := value(t, a.auctions); got != 1 {
		t.Errorf("a: auctions = %v, want 1", got)
	}
	if got := value(t, b.auctions); got != 0 {
		t.Errorf("b: auctions = %v, want 0", got)
	}
}

// A job's steps move it between the active states; at its end it leaves
// them and is counted finished, with its duration.
func TestJobMoved(t *testing.T) {
	m := New("1")
	j := m.Jobs()
	m.SeedJobs([]*jobs.Job{{Role: jobs.RoleRequester, State: market.StateRunning}, {Role: jobs.RoleRequester, State: market.StateSucceeded}})
	j.JobMoved(jobs.RoleRequester, "", market.StateSubmitted, 0)
	j.JobMoved(jobs.RoleRequester, market.StateSubmitted, market.StateBidding, time.Second)
	j.JobMoved(jobs.RoleRequester, market.StateRunning, market.StateFailed, time.Minute)
	for _, tc := range []struct {
		state market.State
		want  float64
	}{{market.StateSubmitted, 0}, {market.StateBidding, 1}, {market.StateRunning, 0}} {
		if got := value(t, m.active.WithLabelValues(jobs.RoleRequester, string(tc.state))); got != tc.want {
			t.Errorf("active %s = %v, want %v", tc.state, got, tc.want)
		}
	}
	if got := value(t, m.finished.WithLabelValues(jobs.RoleRequester, string(market.StateFailed))); got != 1 {
		t.Errorf("finished failed = %v, want 1", got)
	}
	if got := count(m.durations); got != 1 {
		t.Errorf("duration series = %d, want 1", got)
	}
}

// An escrow without the optional interfaces is left as it is, so that
// type assertions on it find what they found before.
func TestLedgerKeepsInterfaces(t *testing.T) {
	m := New("1")
	var plain settlement.Escrow = plainEscrow{}
	if got := m.Ledger(plain); got != plain {
		t.Errorf("Ledger(plain escrow) = %T, want it unwrapped", got)
	}
	if got := m.Ledger(nil); got != nil {
		t.Errorf("Ledger(nil) = %v, want nil", got)
	}
	full := m.Ledger(fullEscrow{})
	for _, ok := range []bool{
		func() bool { _, ok := full.(settlement.LedgerClock); return ok }(),
		func() bool { _, ok := full.(settlement.NativeBalancer); return ok }(),
		func() bool { _, ok := full.(settlement.RefDeriver); return ok }(),
	} {
		if !ok {
			t.Error("the counted ledger lost an optional interface")
		}
	}
	full.Lock(context.Background(), settlement.Terms{})
	full.Status(context.Background(), settlement.Ref{})
	if got := value(t, m.ledgerCalls.WithLabelValues(opLock)); got != 1 {
		t.Errorf("lock calls = %v, want 1", got)
	}
	if got := value(t, m.ledgerErrors.WithLabelValues(opLock)); got != 1 {
		t.Errorf("lock errors = %v, want 1", got)
	}
	if got := value(t, m.ledgerErrors.WithLabelValues(opStatus)); got != 0 {
		t.Errorf("status errors = %v, want 0", got)
	}
}

func TestHandlerPaths(t *testing.T) {
	m := New("1")
	h := m.Handler(discard(), true)
	for _, tc := range []struct {
		method, target, host string
		want                 int
	}{
		{http.MethodGet, "/metrics", "127.0.0.1", http.StatusOK},
		{http.MethodHead, "/metrics", "localhost:9464", http.StatusOK},
		{http.MethodGet, "/metrics/../x", "127.0.0.1", http.StatusNotFound},
		{http.MethodGet, "/metrics%2F..%2Fx", "127.0.0.1", http.StatusNotFound},
		{http.MethodGet, "/Metrics", "127.0.0.1", http.StatusNotFound},
		{http.MethodPut, "/metrics", "127.0.0.1", http.StatusMethodNotAllowed},
		{http.MethodGet, "/metrics", "rebind.example:9464", http.StatusForbidden},
	} {
		r := httptest.NewRequest(tc.method, "http://x"+tc.target, nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s (Host %s) = %d, want %d", tc.method, tc.target, tc.host, w.Code, tc.want)
		}
	}
	// Served to other machines, any Host is fine.
	r := httptest.NewRequest(http.MethodGet, "http://metrics.example/metrics", nil)
	w := httptest.NewRecorder()
	m.Handler(discard(), false).ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "cyxwiz_build_info") {
		t.Errorf("public handler: %d %.200s", w.Code, w.Body.String())
	}
}

type plainEscrow struct{}

func (plainEscrow) Address() string { return "a" }
func (plainEscrow) Lock(context.Context, settlement.Terms) (settlement.Ref, error) {
	return settlement.Ref{}, errors.New("no")
}
func (plainEscrow) Verify(context.Context, settlement.Ref, settlement.Terms) error { return nil }
func (plainEscrow) Propose(context.Context, settlement.Ref, settlement.Terms, settlement.PayoutKind) (settlement.Payout, error) {
	return settlement.Payout{}, nil
}
func (plainEscrow) ProposeSplit(context.Context, settlement.Ref, settlement.Terms, settlement.PayoutKind, uint64) (settlement.Payout, error) {
	return settlement.Payout{}, nil
}
func (plainEscrow) CoSign(context.Context, settlement.Payout, settlement.Terms) (string, error) {
	return "", nil
}
func (plainEscrow) Status(context.Context, settlement.Ref) (settlement.Status, error) {
	return settlement.Status{}, nil
}
func (plainEscrow) Balance(context.Context, string, string) (uint64, error) { return 0, nil }

type fullEscrow struct{ plainEscrow }

func (fullEscrow) LedgerTime(context.Context) (time.Time, error)         { return time.Time{}, nil }
func (fullEscrow) NativeBalance(context.Context, string) (uint64, error) { return 0, nil }
func (fullEscrow) DeriveRef(settlement.Terms) (settlement.Ref, error)    { return settlement.Ref{}, nil }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// value reads a counter's or gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}

// count returns how many series c holds.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}
