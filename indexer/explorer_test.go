package indexer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
	"github.com/cyxwiz/cyxwiz/indexer/indexdb/indexdbtest"
)

// brokenStore answers every query with err, or, with sleep set, waits
// that long (or until the query's deadline) first. It counts the queries.
type brokenStore struct {
	indexdb.Store
	err     error
	sleep   time.Duration
	queries atomic.Int64
}

func (b *brokenStore) q(ctx context.Context) error {
	b.queries.Add(1)
	if b.sleep > 0 {
		select {
		case <-time.After(b.sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.err
}

func (b *brokenStore) Providers(ctx context.Context, _ indexdb.ProviderQuery) (indexdb.Page[indexdb.ProviderSummary], error) {
	return indexdb.Page[indexdb.ProviderSummary]{}, b.q(ctx)
}
func (b *brokenStore) Provider(ctx context.Context, _ string) (indexdb.ProviderDetail, error) {
	return indexdb.ProviderDetail{}, b.q(ctx)
}
func (b *brokenStore) Jobs(ctx context.Context, _ indexdb.JobQuery) (indexdb.Page[indexdb.JobSummary], error) {
	return indexdb.Page[indexdb.JobSummary]{}, b.q(ctx)
}
func (b *brokenStore) Job(ctx context.Context, _ string) (indexdb.JobDetail, error) {
	return indexdb.JobDetail{}, b.q(ctx)
}
func (b *brokenStore) Prices(ctx context.Context, _ indexdb.SeriesQuery) ([]indexdb.PricePoint, error) {
	return nil, b.q(ctx)
}
func (b *brokenStore) SwarmSize(ctx context.Context, _ indexdb.SeriesQuery) ([]indexdb.SizePoint, error) {
	return nil, b.q(ctx)
}
func (b *brokenStore) Models(ctx context.Context, _ indexdb.ModelQuery) (indexdb.Page[indexdb.Model], error) {
	return indexdb.Page[indexdb.Model]{}, b.q(ctx)
}
func (b *brokenStore) Model(ctx context.Context, _ string) (indexdb.Model, error) {
	return indexdb.Model{}, b.q(ctx)
}
func (b *brokenStore) Stats(ctx context.Context) (indexdb.Stats, error) {
	return indexdb.Stats{}, b.q(ctx)
}

// do serves one request from client (an IP address) and returns the
// response.
func do(e *Explorer, method, target, client string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if client != "" {
		r.RemoteAddr = client + ":40000"
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}: %v", w.Body, err)
	}
	return body.Error
}

// paths are a GET of each of the explorer's endpoints.
var paths = []string{PathProviders, PathProviders + "/12D3KooWPeer", PathJobs, PathJobs + "/" + testJob,
	PathPrices, PathSwarm, PathModels, PathModels + "/" + strings.Repeat("ab", 32), PathStats}

func explorer(st indexdb.Store, cfg ExplorerConfig) *Explorer {
	cfg.Logger = quiet()
	return NewExplorer(st, cfg)
}

// TestExplorerCORSOnEveryResponse attacks the CORS promise: every answer,
// success or error of any kind (400, 404, 405, 429, 503, a path the
// explorer does not serve), carries Access-Control-Allow-Origin: *, and a
// preflight is a 204 that allows GET.
func TestExplorerCORSOnEveryResponse(t *testing.T) {
	good := explorer(openStore(t), ExplorerConfig{RatePerSecond: 0.001, Burst: 5})
	bad := explorer(&brokenStore{err: errors.New("boom")}, ExplorerConfig{})
	cases := []struct {
		e      *Explorer
		method string
		target string
		code   int
	}{
		{good, http.MethodGet, PathStats, http.StatusOK},
		{good, http.MethodGet, PathJobs + "?limit=100000", http.StatusBadRequest},
		{good, http.MethodGet, PathJobs + "/" + testJob, http.StatusNotFound},
		{good, http.MethodGet, "/v1/nothing-here", http.StatusNotFound},
		{good, http.MethodPost, PathJobs, http.StatusMethodNotAllowed},
		{good, http.MethodOptions, PathJobs, http.StatusNoContent},
		{good, http.MethodGet, PathStats, http.StatusOK},
		{good, http.MethodGet, PathStats, http.StatusTooManyRequests}, // the 6th GET, of a burst of 5
		{bad, http.MethodGet, PathStats, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		w := do(c.e, c.method, c.target, "198.51.100.7")
		if w.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.target, w.Code, c.code)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s %s (%d): Access-Control-Allow-Origin %q, want *", c.method, c.target, w.Code, got)
		}
	}

	r := httptest.NewRequest(http.MethodOptions, PathJobs, nil)
	r.Header.Set("Origin", "https://explorer.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	w := httptest.NewRecorder()
	good.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d, body %q, allow-methods %q; want 204, empty, GET", w.Code, w.Body, w.Header().Get("Access-Control-Allow-Methods"))
	}
}

// TestExplorerReadOnly attacks the read-only promise: any method but GET,
// HEAD and OPTIONS is a 405 with an Allow header, and never reaches the
// store.
func TestExplorerReadOnly(t *testing.T) {
	st := &brokenStore{}
	e := explorer(st, ExplorerConfig{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "TRACE", "PROPFIND"} {
		for _, p := range paths {
			w := do(e, m, p, "")
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, OPTIONS" {
				t.Errorf("%s %s: %d, Allow %q; want 405, GET, OPTIONS", m, p, w.Code, w.Header().Get("Allow"))
			}
			errorOf(t, w)
		}
	}
	if n := st.queries.Load(); n != 0 {
		t.Errorf("%d writes-by-method reached the store", n)
	}
}

// TestExplorerRateLimit attacks the limiter through HTTP: past its burst
// a client gets 429 with a Retry-After in whole seconds, without the
// query reaching the store; another client is not held up by it.
func TestExplorerRateLimit(t *testing.T) {
	st := &brokenStore{}
	e := explorer(st, ExplorerConfig{RatePerSecond: 0.5, Burst: 3})
	for i := range 3 {
		if w := do(e, http.MethodGet, PathStats, "203.0.113.9"); w.Code != http.StatusOK {
			t.Fatalf("request %d of a burst of 3: %d", i+1, w.Code)
		}
	}
	w := do(e, http.MethodGet, PathStats, "203.0.113.9")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th request of a burst of 3: %d, want 429", w.Code)
	}
	after, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || after < 1 || after > 3 {
		t.Errorf("Retry-After %q, want 1 to 3 seconds at 0.5 a second", w.Header().Get("Retry-After"))
	}
	errorOf(t, w)
	if n := st.queries.Load(); n != 3 {
		t.Errorf("%d queries reached the store, want 3", n)
	}
	if w := do(e, http.MethodGet, PathStats, "203.0.113.10"); w.Code != http.StatusOK {
		t.Errorf("another client: %d, want 200", w.Code)
	}
}

// TestExplorerBadQueries attacks the parameters: a page over
// indexdb.MaxPageSize, a negative or non-numeric limit, forged cursors
// (garbage, a cursor of another listing, JSON with SQL in it, one over
// the length bound), bad times, buckets and resources, and oversized text
// filters are the client's fault: 400 with an error naming what was
// wrong, never a 500 or 503.
func TestExplorerBadQueries(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	if err := st.AddAnnouncements(bg, []indexdb.Announcement{indexdbtest.Announcement(testJob, 1, "req", now)}); err != nil {
		t.Fatal(err)
	}
	e := explorer(st, ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	modelsCursor := indexdb.Cursor{Kind: "models", Time: now.UnixNano(), Key: "x"}.Encode()
	cases := map[string]string{
		PathJobs + "?limit=" + strconv.Itoa(indexdb.MaxPageSize+1): "limit",
		PathJobs + "?limit=-1":                                   "limit",
		PathJobs + "?limit=ten":                                  "limit",
		PathProviders + "?limit=1e3":                             "limit",
		PathModels + "?limit=99999999999999999999":               "limit",
		PathJobs + "?cursor=%00%01%02":                           "cursor",
		PathJobs + "?cursor=" + b64("not json"):                  "cursor",
		PathJobs + "?cursor=" + b64(`{"k":"jobs","t":1,"i":""}`): "cursor",
		PathJobs + "?cursor=" + modelsCursor:                     "cursor",
		PathJobs + "?cursor=" + url.QueryEscape(b64(`{"k":"jobs","t":"1; DROP TABLE jobs","i":"x"}`)): "cursor",
		PathJobs + "?cursor=" + strings.Repeat("A", indexdb.MaxCursorLen+1):                           "cursor",
		PathProviders + "?cursor=" + b64(`{"k":"providers"}`):                                         "cursor",
		PathModels + "?cursor=" + b64(`[]`):                                                           "cursor",
		PathPrices + "?from=yesterday":                                                                "from",
		PathSwarm + "?to=2024-13-45T00:00:00Z":                                                        "to",
		PathPrices + "?bucket=fortnight":                                                              "bucket",
		PathSwarm + "?bucket=1s":                                                                      "bucket",
		PathSwarm + "?bucket=-1h":                                                                     "bucket",
		PathPrices + "?from=2000000000&to=1000000000":                                                 "from",
		PathSwarm + "?from=0&to=2000000000&bucket=1m":                                                 "series",
		PathPrices + "?resource=gold":                                                                 "resource",
		PathJobs + "?since=last+week":                                                                 "since",
		PathProviders + "?seen_since=soon":                                                            "seen_since",
		PathModels + "?q=" + strings.Repeat("x", indexdb.MaxFilterLen+1):                              "text",
		PathJobs + "?requester=" + strings.Repeat("x", indexdb.MaxFilterLen+1):                        "requester",
		PathProviders + "?gpu=" + strings.Repeat("x", indexdb.MaxFilterLen+1):                         "gpu",
	}
	for target, word := range cases {
		w := do(e, http.MethodGet, target, "")
		if w.Code != http.StatusBadRequest {
			t.Errorf("GET %.80s: %d %s, want 400", target, w.Code, w.Body)
			continue
		}
		if msg := errorOf(t, w); !strings.Contains(msg, word) {
			t.Errorf("GET %.80s: error %q does not name %q", target, msg, word)
		}
	}
	// The data is intact and the good cursor of the same listing works.
	w := do(e, http.MethodGet, PathJobs+"?limit=1", "")
	var page indexdb.Page[indexdb.JobSummary]
	if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != http.StatusOK || err != nil || len(page.Items) != 1 {
		t.Errorf("jobs after the attacks: %d %s", w.Code, w.Body)
	}
}

// TestExplorerNotFound attacks the lookups by key: an unknown job, model
// or provider, and keys shaped like SQL, are 404, not 500 nor 200.
func TestExplorerNotFound(t *testing.T) {
	e := explorer(openStore(t), ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	for _, target := range []string{
		PathJobs + "/" + testJob,
		PathJobs + "/" + url.PathEscape("' OR '1'='1"),
		PathModels + "/" + strings.Repeat("0", 64),
		PathModels + "/" + url.PathEscape("x' UNION SELECT * FROM receipts --"),
		PathProviders + "/12D3KooWNobody",
	} {
		w := do(e, http.MethodGet, target, "")
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", target, w.Code, w.Body)
			continue
		}
		errorOf(t, w)
	}
}

// TestExplorerStoreFailures attacks the explorer with a database that
// fails or hangs: a generic error is a 503 whose body does not leak the
// database's error; a store slower than QueryTimeout is a 503 within a
// fraction of its delay, on every endpoint, never a hang.
func TestExplorerStoreFailures(t *testing.T) {
	failing := explorer(&brokenStore{err: errors.New("pq: password authentication failed for user admin")}, ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	slow := &brokenStore{sleep: time.Minute}
	hanging := explorer(slow, ExplorerConfig{RatePerSecond: 1000, Burst: 1000, QueryTimeout: 50 * time.Millisecond})
	for _, p := range paths {
		w := do(failing, http.MethodGet, p, "")
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s on a failing store: %d, want 503", p, w.Code)
		}
		if msg := errorOf(t, w); strings.Contains(msg, "password") || strings.Contains(msg, "admin") {
			t.Errorf("GET %s: error %q leaks the database's error", p, msg)
		}

		start := time.Now()
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- do(hanging, http.MethodGet, p, "") }()
		select {
		case w := <-done:
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("GET %s on a slow store: %d, want 503", p, w.Code)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("GET %s on a slow store took %v", p, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("GET %s on a slow store hangs", p)
		}
	}
	if n := slow.queries.Load(); n != int64(len(paths)) {
		t.Errorf("%d queries reached the slow store, want %d", n, len(paths))
	}
}

// TestExplorerModelSearchInjection attacks the model search with SQL and
// LIKE metacharacters: each is a 200 with no models (none has them in its
// name or description), the data is intact afterwards, and an honest
// search still finds its model.
func TestExplorerModelSearchInjection(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	ms := []indexdb.Model{
		indexdbtest.Model("pub1", "mnist-mlp", "a perceptron for digits", now.Add(-time.Hour)),
		indexdbtest.Model("pub2", "iris-tree", "a small tree", now.Add(-2*time.Hour)),
		indexdbtest.Model("pub3", "resnet", "images", now.Add(-3*time.Hour)),
	}
	if err := st.AddModels(bg, ms); err != nil {
		t.Fatal(err)
	}
	before := stats(t, st)
	e := explorer(st, ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	for _, q := range []string{
		`'; DROP TABLE models; --`,
		`' OR '1'='1`,
		`" OR ""="`,
		`%`, `_`, `%%`, `\`, `\%`, `*`,
		`x') UNION SELECT id, publisher FROM receipts --`,
		`mnist%mlp`,
		`mnist_mlp`,
	} {
		w := do(e, http.MethodGet, PathModels+"?q="+url.QueryEscape(q), "")
		var page indexdb.Page[indexdb.Model]
		if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != http.StatusOK || err != nil {
			t.Errorf("q=%q: %d %s", q, w.Code, w.Body)
			continue
		}
		if len(page.Items) != 0 {
			t.Errorf("q=%q: %d models, want none", q, len(page.Items))
		}
	}
	if after := stats(t, st); after != before {
		t.Errorf("stats after the searches %+v, before %+v", after, before)
	}
	w := do(e, http.MethodGet, PathModels+"?q=PERCEPTRON", "")
	var page indexdb.Page[indexdb.Model]
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page.Items) != 1 || page.Items[0].Name != "mnist-mlp" {
		t.Errorf("honest search: %d %s", w.Code, w.Body)
	}
}

// TestExplorerJobsPagination attacks the cursor through HTTP: paging
// /v1/jobs five at a time, across jobs that share their first-seen time,
// visits every job exactly once, newest first, and ends with an empty
// next cursor.
func TestExplorerJobsPagination(t *testing.T) {
	st := openStore(t)
	base := time.Now().Truncate(time.Second).Add(-time.Hour)
	var anns []indexdb.Announcement
	const n = 37
	for i := range n {
		// Groups of three share a time: the cursor's tie-break by ID matters.
		anns = append(anns, indexdbtest.Announcement(jobID(i), 1, "req", base.Add(time.Duration(i/3)*time.Second)))
	}
	if err := st.AddAnnouncements(bg, anns); err != nil {
		t.Fatal(err)
	}
	e := explorer(st, ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	seen := map[string]int{}
	var order []indexdb.JobSummary
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("pagination does not end")
		}
		w := do(e, http.MethodGet, PathJobs+"?limit=5&cursor="+url.QueryEscape(cursor), "")
		var page indexdb.Page[indexdb.JobSummary]
		if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != http.StatusOK || err != nil {
			t.Fatalf("page %d: %d %s", pages, w.Code, w.Body)
		}
		if len(page.Items) > 5 {
			t.Fatalf("page %d has %d items, limit 5", pages, len(page.Items))
		}
		for _, j := range page.Items {
			seen[j.JobID]++
			order = append(order, j)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != n {
		t.Errorf("visited %d distinct jobs, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %s visited %d times", id, c)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i].FirstSeen.After(order[i-1].FirstSeen) {
			t.Errorf("job %s (%v) after the older %s (%v)", order[i].JobID, order[i].FirstSeen, order[i-1].JobID, order[i-1].FirstSeen)
		}
	}
}

// TestExplorerModelSearchNUL attacks the search with a NUL byte, which
// no model's name or description holds: SQLite ends a LIKE pattern at
// NUL, so "%\x00%" is "%" and matches every model. It must find none, or
// be refused as a bad query.
func TestExplorerModelSearchNUL(t *testing.T) {
	st := openStore(t)
	if err := st.AddModels(bg, []indexdb.Model{indexdbtest.Model("pub1", "mnist-mlp", "digits", time.Now())}); err != nil {
		t.Fatal(err)
	}
	e := explorer(st, ExplorerConfig{RatePerSecond: 1000, Burst: 1000})
	for _, q := range []string{"\x00", "zzz\x00"} {
		w := do(e, http.MethodGet, PathModels+"?q="+url.QueryEscape(q), "")
		var page indexdb.Page[indexdb.Model]
		_ = json.Unmarshal(w.Body.Bytes(), &page)
		if w.Code == http.StatusOK && len(page.Items) != 0 {
			t.Errorf("q=%q: %d models, want none (or a 400)", q, len(page.Items))
		}
	}
}
