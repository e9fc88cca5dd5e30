package metrics

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/content"
	"github.com/cyxwiz/cyxwiz/jobs"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/settlement"
)

// exercised returns the names of every metric of ours, each hook fed once
// so that every vector has a series.
func exercised(t *testing.T) map[string]bool {
	t.Helper()
	m := New("test")
	j := m.Jobs()
	j.AuctionOpened()
	j.BidReceived(true)
	j.BidSent(true)
	j.Awarded(true)
	j.Reauctioned(jobs.CauseNoBids)
	j.JobMoved(jobs.RoleRequester, "", market.StateSubmitted, 0)
	j.JobMoved(jobs.RoleRequester, market.StateSubmitted, market.StateSucceeded, time.Second)
	j.EscrowMoved(jobs.EscrowLocked)
	m.ObserveFetch(time.Second, nil)
	m.ObserveCall("node.info", nil, time.Millisecond)
	m.ObserveCall("node.info", context.Canceled, time.Millisecond)
	m.Content(func() content.Stats { return content.Stats{} }, func(context.Context) (int64, error) { return 1, nil })
	m.Executors(func() jobs.Load { return jobs.Load{} })
	m.CallBudgets(func() BudgetLoad { return BudgetLoad{} })
	m.Ledger(fullEscrow{}).Lock(context.Background(), settlement.Terms{})
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), Namespace+"_") {
			names[f.GetName()] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bcyxwiz_[a-z_]+[a-z]`)

// referenced returns the cyxwiz_ metric names a file mentions, without
// the histogram series' suffixes.
func referenced(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range metricName.FindAllString(string(data), -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if s, ok := strings.CutSuffix(n, suffix); ok && strings.HasSuffix(s, "_seconds") {
				n = s
			}
		}
		out[n] = true
	}
	return out
}

// TestDocsNameEveryMetric: docs/metrics.md documents every metric and
// names no other; the Grafana dashboard is valid JSON and its queries use
// only metrics that exist.
func TestDocsNameEveryMetric(t *testing.T) {
	have := exercised(t)
	doc := referenced(t, "../../docs/metrics.md")
	for n := range have {
		if !doc[n] {
			t.Errorf("docs/metrics.md does not document %s", n)
		}
	}
	for n := range doc {
		if !have[n] {
			t.Errorf("docs/metrics.md names %s, which is not a metric", n)
		}
	}
	const dashboard = "../../docs/grafana-dashboard.json"
	data, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if len(d.Panels) < 10 {
		t.Fatalf("%s: %d panels", dashboard, len(d.Panels))
	}
	for n := range referenced(t, dashboard) {
		if !have[n] {
			t.Errorf("%s queries %s, which is not a metric", dashboard, n)
		}
	}
}
