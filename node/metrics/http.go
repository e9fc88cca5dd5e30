package metrics

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Limits of the metrics server.
const (
	// MaxScrapes bounds the scrapes served at once; more get 503 at once.
	MaxScrapes = 4
	// MaxConnections bounds the open connections of the metrics listener.
	MaxConnections = 16
	// ScrapeTimeout bounds gathering the metrics of one scrape.
	ScrapeTimeout = 10 * time.Second
)

// Handler returns the HTTP handler of the metrics: Prometheus text (or
// the protobuf format, by content negotiation) at exactly Path for GET and
// HEAD, 404 for any other path. When loopbackOnly, a Host header other
// than localhost or an IP literal is refused (403), so that a web page
// cannot read the metrics through DNS rebinding.
func (m *Metrics) Handler(log *slog.Logger, loopbackOnly bool) http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: MaxScrapes,
		Timeout:             ScrapeTimeout,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		if loopbackOnly && !localHost(r.Host) {
			http.Error(w, "forbidden: Host must be localhost or an IP address", http.StatusForbidden)
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// Server returns an HTTP server for Handler with timeouts that keep a
// slow or silent client from holding a connection.
func (m *Metrics) Server(log *slog.Logger, loopbackOnly bool) *http.Server {
	return &http.Server{
		Handler:           m.Handler(log, loopbackOnly),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      ScrapeTimeout + 5*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// localHost accepts "localhost" and IP literals.
func localHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || net.ParseIP(host) != nil
}

// Loopback reports whether addr (host:port) names a loopback interface:
// localhost or a loopback IP. An empty host (every interface) is not.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
