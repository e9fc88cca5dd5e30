package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/node/metrics"
)

// scrape reads a node's /metrics and returns each series (name with its
// labels, as written) with its value.
func scrape(t *testing.T, n *testNode) map[string]float64 {
	t.Helper()
	if n.MetricsAddr() == "" {
		t.Fatal("the node serves no metrics")
	}
	resp, err := http.Get("http://" + n.MetricsAddr() + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", metrics.Path, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want Prometheus text", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sum adds up the series whose name (with labels) starts with prefix.
func sum(series map[string]float64, prefix string) (total float64, found bool) {
	for k, v := range series {
		if strings.HasPrefix(k, prefix) {
			total += v
			found = true
		}
	}
	return total, found
}

// wantAtLeast checks that the series exist and add up to at least min.
func wantAtLeast(t *testing.T, who string, series map[string]float64, prefix string, min float64) {
	t.Helper()
	got, found := sum(series, prefix)
	if !found {
		t.Errorf("%s: no series %s", who, prefix)
		return
	}
	if got < min {
		t.Errorf("%s: %s = %v, want at least %v", who, prefix, got, min)
	}
}

func metricsConfig(c *Config) { c.Metrics.Addr = "127.0.0.1:0" }

// TestMetricsCountAJob runs a job across two nodes that serve metrics and
// finds it counted on both sides, with the API calls, the transfers and
// libp2p's own metrics.
func TestMetricsCountAJob(t *testing.T) {
	if testing.Short() {
		t.Skip("many nodes")
	}
	nodes := swarmWith(t, 2, metricsConfig)
	req, prov := nodes[0], nodes[1]
	module := addFile(t, req.client, "guest.wasm", mustRead(t, guestModule(t)))
	input := addFile(t, req.client, "data.txt", []byte("the quick brown fox\n"))
	waitProviders(t, req.client, 1)

	job, err := req.client.JobSubmit(context.Background(), spec(module, input, nil))
	if err != nil {
		t.Fatal(err)
	}
	// A scrape while the job is under way sees it somewhere.
	during := scrape(t, req)
	wantAtLeast(t, "requester during the job", during, `cyxwiz_jobs_transitions_total{role="requester",state="submitted"}`, 1)

	if done := waitJob(t, req.client, job.ID, 120*time.Second); done.State != "succeeded" {
		t.Fatalf("job ended %s: %+v", done.State, done)
	}
	// An unknown method is counted under one name, not its own.
	rawCall(t, req, `{"jsonrpc":"2.0","id":1,"method":"no.such.method.x1"}`)

	r := scrape(t, req)
	for _, w := range []struct {
		series string
		min    float64
	}{
		{`cyxwiz_jobs_finished_total{role="requester",state="succeeded"}`, 1},
		{`cyxwiz_jobs_duration_seconds_count{role="requester",state="succeeded"}`, 1},
		{`cyxwiz_jobs_transitions_total{role="requester",state="running"}`, 1},
		{`cyxwiz_market_auctions_total`, 1},
		{`cyxwiz_market_bids_received_total{result="accepted"}`, 1},
		{`cyxwiz_market_awards_total{result="taken"}`, 1},
		{`cyxwiz_market_reauctions_total{cause=`, 0},
		{`cyxwiz_rpc_calls_total{method="job.submit"}`, 1},
		{`cyxwiz_rpc_calls_total{method="content.add"}`, 2},
		{`cyxwiz_rpc_calls_total{method="unknown"}`, 1},
		{`cyxwiz_rpc_errors_total{method="unknown"}`, 1},
		{`cyxwiz_rpc_call_duration_seconds_count{method="job.submit"}`, 1},
		{`cyxwiz_content_bytes_total{direction="out"`, 1},
		{`cyxwiz_content_blocks_total{direction="out"`, 1}, // the module and input
		{`cyxwiz_content_fetch_duration_seconds_count{result="ok"}`, 1},
		{`cyxwiz_content_store_bytes`, 1},
		{`cyxwiz_jobs_active{`, 0},
		{`cyxwiz_build_info{version="` + Version + `"}`, 1},
		{`go_goroutines`, 1},
		{`libp2p_`, 1},
	} {
		wantAtLeast(t, "requester", r, w.series, w.min)
	}
	if got, _ := sum(r, `cyxwiz_jobs_active{`); got != 0 {
		t.Errorf("requester: %v jobs active after the only job ended", got)
	}
	for k := range r {
		if strings.Contains(k, "no.such.method") || strings.Contains(k, job.ID) || strings.Contains(k, prov.Host().ID().String()) {
			t.Errorf("requester: series %s names a method, job or peer of its caller's choosing", k)
		}
	}

	p := scrape(t, prov)
	for _, w := range []struct {
		series string
		min    float64
	}{
		{`cyxwiz_jobs_finished_total{role="provider",state="succeeded"}`, 1},
		{`cyxwiz_jobs_transitions_total{role="provider",state="executing"}`, 1},
		{`cyxwiz_market_bids_sent_total{result="delivered"}`, 1},
		{`cyxwiz_content_bytes_total{direction="in"`, 1}, // the module and input
		{`cyxwiz_content_blocks_total{direction="in"`, 1},
		{`cyxwiz_executor_running`, 0},
		{`cyxwiz_executor_queued`, 0},
		{`cyxwiz_executor_memory_reserved_bytes`, 0},
		{`libp2p_`, 1},
	} {
		wantAtLeast(t, "provider", p, w.series, w.min)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMetricsOffByDefault: neither profile serves metrics, and a node
// without metrics.addr counts nothing and listens for no scrape.
func TestMetricsOffByDefault(t *testing.T) {
	if DefaultConfig().Metrics.Addr != "" || LocalConfig().Metrics.Addr != "" {
		t.Fatalf("metrics.addr defaults to %q (default) and %q (local), want both off",
			DefaultConfig().Metrics.Addr, LocalConfig().Metrics.Addr)
	}
	n := startNode(t, testConfig(), 0)
	if got := n.MetricsAddr(); got != "" {
		t.Fatalf("MetricsAddr() = %q, want no metrics server", got)
	}
	if n.metrics != nil {
		t.Fatal("a metrics server was built")
	}
}

func TestMetricsConfig(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"", false, true},
		{"127.0.0.1:9464", false, true},
		{"[::1]:9464", false, true},
		{"localhost:9464", false, true},
		{"127.0.0.1:0", false, true},
		{"0.0.0.0:9464", false, false},
		{":9464", false, false},
		{"[::]:9464", false, false},
		{"192.168.1.5:9464", false, false},
		{"metrics.example.com:9464", false, false},
		{"0.0.0.0:9464", true, true},
		{"127.0.0.1", false, false},
		{"nonsense", true, false},
	} {
		cfg := DefaultConfig()
		cfg.Metrics = MetricsConfig{Addr: tc.addr, Public: tc.public}
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("metrics.addr %q, public %v: Validate() = %v, want ok %v", tc.addr, tc.public, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "metrics.addr") {
			t.Errorf("metrics.addr %q: error %q does not name the key", tc.addr, err)
		}
	}
}

// rawRequest sends request as written to addr and returns the status code
// of the reply.
func rawRequest(t *testing.T, addr, request string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsHostile: the endpoint serves exactly /metrics, refuses other
// methods and foreign Host headers, bounds its clients, and keeps serving
// under a burst of scrapes.
func TestMetricsHostile(t *testing.T) {
	cfg := testConfig()
	metricsConfig(&cfg)
	n := startNode(t, cfg, 0)
	addr := n.MetricsAddr()
	for _, tc := range []struct {
		request string
		want    int
	}{
		{"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusOK},
		{"GET /metrics/../x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"GET /metrics/../metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"GET /metrics/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"GET //metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"GET " + api.PathRPC + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", http.StatusNotFound},
		{"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", http.StatusMethodNotAllowed},
		{"GET /metrics HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n", http.StatusForbidden},
		{"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + strings.Repeat("a", 24<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		if got := rawRequest(t, addr, tc.request); got != tc.want {
			t.Errorf("%.60q: status %d, want %d", tc.request, got, tc.want)
		}
	}

	// A silent or slow client cannot hold a connection for ever.
	srv := n.metrics.http
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("metrics server without timeouts or header bound: %+v", srv)
	}

	// Connections past the bound wait rather than each taking a
	// goroutine and a scrape; a burst of scrapes is served or refused
	// (503), never breaks the server.
	var wg sync.WaitGroup
	codes := make(chan int, 4*metrics.MaxConnections)
	for range 4 * metrics.MaxConnections {
		wg.Go(func() {
			resp, err := http.Get("http://" + addr + metrics.Path)
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK && c != http.StatusServiceUnavailable {
			t.Errorf("scrape in a burst: status %d, want 200 or 503", c)
		}
	}
	if s := scrape(t, n); len(s) == 0 {
		t.Fatal("no metrics after the burst")
	}
}
