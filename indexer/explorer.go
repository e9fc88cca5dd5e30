package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/cyxwiz/cyxwiz/indexer/indexdb"
)

// Explorer is the public, read-only HTTP JSON API of an indexer's store.
// Every response is public data: CORS is open to every origin, only GET
// (and its preflight) is served, each client (by IP address) is rate
// limited, page sizes and series lengths are bounded by the store, and
// each query runs under a deadline, so that a slow database answers 503
// instead of holding connections.
type Explorer struct {
	store   indexdb.Store
	limiter *rateLimiter
	log     *slog.Logger
	mux     *http.ServeMux
	timeout time.Duration
}

// ExplorerConfig configures an Explorer.
type ExplorerConfig struct {
	// RatePerSecond and Burst bound each client's requests (defaults 20,
	// and twice the rate).
	RatePerSecond float64
	Burst         int
	// QueryTimeout bounds each query (default 5 s).
	QueryTimeout time.Duration
	Logger       *slog.Logger
}

// Explorer API paths.
const (
	PathProviders = "/v1/providers"
	PathJobs      = "/v1/jobs"
	PathPrices    = "/v1/prices"
	PathSwarm     = "/v1/swarm"
	PathModels    = "/v1/models"
	PathStats     = "/v1/stats"
)

// NewExplorer serves store.
func NewExplorer(store indexdb.Store, cfg ExplorerConfig) *Explorer {
	if cfg.RatePerSecond <= 0 {
		cfg.RatePerSecond = 20
	}
	if cfg.Burst <= 0 {
		cfg.Burst = int(2 * cfg.RatePerSecond)
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Explorer{store: store, limiter: newRateLimiter(cfg.RatePerSecond, cfg.Burst), log: cfg.Logger,
		mux: http.NewServeMux(), timeout: cfg.QueryTimeout}
	e.routes()
	return e
}

// ServeHTTP applies CORS, the method check and the rate limit, then
// routes.
func (e *Explorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	h.Set("X-Content-Type-Options", "nosniff")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
	default:
		h.Set("Allow", "GET, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "the explorer is read-only: GET only")
		return
	}
	if wait, ok := e.limiter.allow(clientIP(r), time.Now()); !ok {
		h.Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeError(w, http.StatusTooManyRequests, "too many requests: slow down")
		return
	}
	e.mux.ServeHTTP(w, r)
}

// clientIP names the client a rate limit applies to: its IPv4 address, or
// the /64 of its IPv6 address (one host commonly holds a whole /64).
// Headers such as X-Forwarded-For are not trusted.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a.Is6() && !a.Is4In6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.Unmap().String()
}

// errorBody is every error's JSON.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// answer writes a query's result, or its error: a bad query is the
// client's (400), an unknown key 404, anything else the database's (503).
func (e *Explorer) answer(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, indexdb.ErrBadQuery) || errors.Is(err, errBadParam):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, indexdb.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		e.log.Warn("explorer query failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "the index is unavailable now; try again later")
	}
}

var errBadParam = errors.New("bad parameter")

// params reads a request's query parameters, collecting the first error.
type params struct {
	r   *http.Request
	err error
}

func (p *params) str(name string) string { return p.r.URL.Query().Get(name) }

func (p *params) int(name string) int {
	v := p.str(name)
	if v == "" || p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.err = fmt.Errorf("%w: %s: %q is not an integer", errBadParam, name, v)
	}
	return n
}

// time reads an RFC 3339 time or Unix seconds.
func (p *params) time(name string, def time.Time) time.Time {
	v := p.str(name)
	if v == "" || p.err != nil {
		return def
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC()
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.err = fmt.Errorf("%w: %s: %q is neither RFC 3339 nor Unix seconds", errBadParam, name, v)
	}
	return t.UTC()
}

// duration reads a Go duration ("1h", "15m").
func (p *params) duration(name string, def time.Duration) time.Duration {
	v := p.str(name)
	if v == "" || p.err != nil {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.err = fmt.Errorf("%w: %s: %q is not a duration such as 1h or 15m", errBadParam, name, v)
	}
	return d
}

// lookup is one query of the store, built from a request's parameters.
type lookup func(ctx context.Context, st indexdb.Store) (any, error)

// handle serves the query that build makes of a request: a parameter
// error is answered at once, and the query runs under the deadline.
func (e *Explorer) handle(build func(p *params) lookup) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := params{r: r}
		q := build(&p)
		if p.err != nil {
			e.answer(w, nil, p.err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), e.timeout)
		defer cancel()
		v, err := q(ctx, e.store)
		e.answer(w, v, err)
	}
}

func (e *Explorer) routes() {
	e.mux.HandleFunc("GET "+PathProviders, e.handle(func(p *params) lookup {
		q := indexdb.ProviderQuery{Limit: p.int("limit"), Cursor: p.str("cursor"), GPUModel: p.str("gpu"),
			Executor: p.str("executor"), SeenSince: p.time("seen_since", time.Time{})}
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Providers(ctx, q) }
	}))
	e.mux.HandleFunc("GET "+PathProviders+"/{peer}", e.handle(func(p *params) lookup {
		peer := p.r.PathValue("peer")
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Provider(ctx, peer) }
	}))
	e.mux.HandleFunc("GET "+PathJobs, e.handle(func(p *params) lookup {
		q := indexdb.JobQuery{Limit: p.int("limit"), Cursor: p.str("cursor"), Requester: p.str("requester"),
			Provider: p.str("provider"), Outcome: p.str("outcome"), Kind: p.str("kind"), Since: p.time("since", time.Time{})}
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Jobs(ctx, q) }
	}))
	e.mux.HandleFunc("GET "+PathJobs+"/{id}", e.handle(func(p *params) lookup {
		id := p.r.PathValue("id")
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Job(ctx, id) }
	}))
	e.mux.HandleFunc("GET "+PathPrices, e.handle(func(p *params) lookup {
		q := series(p, time.Now().UTC())
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Prices(ctx, q) }
	}))
	e.mux.HandleFunc("GET "+PathSwarm, e.handle(func(p *params) lookup {
		q := series(p, time.Now().UTC())
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.SwarmSize(ctx, q) }
	}))
	e.mux.HandleFunc("GET "+PathModels, e.handle(func(p *params) lookup {
		q := indexdb.ModelQuery{Limit: p.int("limit"), Cursor: p.str("cursor"), Text: p.str("q"), Publisher: p.str("publisher")}
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Models(ctx, q) }
	}))
	e.mux.HandleFunc("GET "+PathModels+"/{id}", e.handle(func(p *params) lookup {
		id := p.r.PathValue("id")
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Model(ctx, id) }
	}))
	e.mux.HandleFunc("GET "+PathStats, e.handle(func(*params) lookup {
		return func(ctx context.Context, st indexdb.Store) (any, error) { return st.Stats(ctx) }
	}))
}

// series reads from, to and bucket: by default the last day in hours.
func series(p *params, now time.Time) indexdb.SeriesQuery {
	to := p.time("to", now)
	return indexdb.SeriesQuery{From: p.time("from", to.Add(-24*time.Hour)), To: to,
		Bucket: p.duration("bucket", time.Hour), Resource: p.str("resource")}
}
