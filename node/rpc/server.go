package rpc

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// MaxBatch is the most requests one batch may hold.
const MaxBatch = 100

// MaxHeaderBytes bounds the request headers of one HTTP request.
const MaxHeaderBytes = 64 << 10

// Default timeouts of the HTTP server and of WebSocket keepalives.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultPingInterval      = 30 * time.Second
)

// Options configure a Server.
type Options struct {
	// Token is the bearer token every request must carry.
	Token string
	// MaxRequestBytes bounds one HTTP body or WebSocket message.
	MaxRequestBytes int64
	// AllowedOrigins lists browser origins (scheme://host:port) allowed besides
	// the API's own.
	AllowedOrigins []string
	// Logger receives the server's log lines.
	Logger *slog.Logger

	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body. A
	// method may run longer: the read deadline ends with the body.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an HTTP response, counted from when the
	// reply is ready.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that carries no request
	// for this long.
	IdleTimeout time.Duration
	// PingInterval is how often a WebSocket peer is pinged; a peer that
	// answers no ping for two and a half intervals is dropped.
	PingInterval time.Duration

	// Observe, when set, is told of every call made (over HTTP or
	// WebSocket): its method, which is UnknownMethod for a name that is
	// not registered, so that callers cannot grow the set of names; its
	// error (nil on success); and how long it took.
	Observe func(method string, err error, d time.Duration)
}

// UnknownMethod is the method name Options.Observe receives for a call of
// a method that does not exist.
const UnknownMethod = "unknown"

// Server dispatches JSON-RPC requests to registered methods. Register every
// method before serving; Close ends the WebSocket connections it holds.
type Server struct {
	opts    Options
	log     *slog.Logger
	methods map[string]Handler
	sources map[string]Source
	streams map[string]http.Handler
	origins map[string]bool

	mu     sync.Mutex
	conns  map[*wsConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server with no methods.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{&opts.ReadTimeout, DefaultReadTimeout},
		{&opts.WriteTimeout, DefaultWriteTimeout},
		{&opts.IdleTimeout, DefaultIdleTimeout},
		{&opts.PingInterval, DefaultPingInterval},
	} {
		if *d.field <= 0 {
			*d.field = d.def
		}
	}
	origins := map[string]bool{}
	for _, o := range opts.AllowedOrigins {
		origins[strings.TrimRight(o, "/")] = true
	}
	return &Server{
		opts:    opts,
		log:     opts.Logger,
		methods: map[string]Handler{},
		sources: map[string]Source{},
		streams: map[string]http.Handler{},
		origins: origins,
		conns:   map[*wsConn]struct{}{},
	}
}

// Register adds a method. It panics on a duplicate name: that is a
// programming error found at start-up.
func (s *Server) Register(name string, h Handler) {
	if _, dup := s.methods[name]; dup {
		panic("rpc: duplicate method " + name)
	}
	s.methods[name] = h
}

// RegisterSubscription adds a subscription method, served over WebSocket only.
func (s *Server) RegisterSubscription(name string, src Source) {
	if _, dup := s.sources[name]; dup {
		panic("rpc: duplicate subscription " + name)
	}
	s.sources[name] = src
}

// knownMethod returns name when it is a registered method or
// subscription (or unsubscribe), else UnknownMethod.
func (s *Server) knownMethod(name string) string {
	if _, ok := s.methods[name]; ok {
		return name
	}
	if _, ok := s.sources[name]; ok || name == api.MethodUnsubscribe {
		return name
	}
	return UnknownMethod
}

// Methods lists the registered method and subscription names.
func (s *Server) Methods() []string {
	out := make([]string, 0, len(s.methods)+len(s.sources))
	for m := range s.methods {
		out = append(out, m)
	}
	for m := range s.sources {
		out = append(out, m)
	}
	return out
}

// Handler returns the HTTP handler: guards first, then the RPC, WebSocket
// and stream paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(api.PathRPC, s.serveHTTP)
	mux.HandleFunc(api.PathWebSocket, s.serveWebSocket)
	for pattern, h := range s.streams {
		mux.Handle(pattern, h)
	}
	return s.guard(mux)
}

// HTTPServer returns an HTTP server for Handler with the configured
// timeouts. Serve it on a listener from LimitListener to bound the open
// connections.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Close ends every WebSocket connection and waits for their goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
}

// guard rejects foreign Hosts and Origins (403) and requests without the
// right bearer token (401).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			s.log.Warn("api request refused: foreign host", "host", r.Host, "remote", r.RemoteAddr)
			writeHTTPError(w, http.StatusForbidden, api.CodeForbidden, "forbidden: Host must be localhost or an IP address")
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			if !s.originAllowed(origin, r.Host) {
				s.log.Warn("api request refused: foreign origin", "origin", origin, "remote", r.RemoteAddr)
				writeHTTPError(w, http.StatusForbidden, api.CodeForbidden, "forbidden: origin "+origin+" is not allowed")
				return
			}
			// An allowed browser origin may call the API cross-origin; the
			// preflight carries no token, the real request must.
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cyxwiz"`)
			writeHTTPError(w, http.StatusUnauthorized, api.CodeUnauthorized, "unauthorized: missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHost accepts "localhost" and IP literals: a DNS-rebinding attack
// needs a host name, so refusing names refuses it.
func localHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	return net.ParseIP(host) != nil
}

func (s *Server) originAllowed(origin, host string) bool {
	origin = strings.TrimRight(origin, "/")
	return origin == "http://"+host || s.origins[origin]
}

func writeHTTPError(w http.ResponseWriter, status, code int, msg string) {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		// A client the guards refuse keeps no connection open: it would
		// hold one of the few the API serves at once.
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Response{JSONRPC: api.Version, ID: json.RawMessage("null"), Error: &api.Error{Code: code, Message: msg}})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHTTPError(w, http.StatusMethodNotAllowed, api.CodeInvalidRequest, "use HTTP POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxRequestBytes))
	rc := http.NewResponseController(w)
	if err != nil {
		// The write deadline set when the headers arrived may have
		// passed: the error reply gets a fresh one, and the connection is
		// dropped after it.
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		w.Header().Set("Connection", "close")
		var tooLarge *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooLarge):
			writeHTTPError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge,
				fmt.Sprintf("request larger than %d bytes", s.opts.MaxRequestBytes))
		case errors.As(err, &netErr) && netErr.Timeout():
			writeHTTPError(w, http.StatusRequestTimeout, api.CodeParseError,
				fmt.Sprintf("read request: the request did not arrive within %s", s.opts.ReadTimeout))
		default:
			writeHTTPError(w, http.StatusBadRequest, api.CodeParseError, "read request: "+err.Error())
		}
		return
	}
	// net/http lifts the read deadline once the body is read. The write
	// deadline, set when the headers arrived, starts again once the reply
	// is ready, so that a method may run longer than the write timeout.
	out := s.handleMessage(r.Context(), body, nil)
	_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// handleMessage serves one request or batch and returns the encoded reply,
// nil when nothing is to be sent (notifications only). ws is the WebSocket
// the message came on, nil for HTTP.
func (s *Server) handleMessage(ctx context.Context, msg []byte, ws *wsConn) []byte {
	reqs, batch := decodeMessage(msg)
	var resps []*api.Response
	for _, r := range reqs {
		if resp := s.serveOne(ctx, r, ws); resp != nil {
			resps = append(resps, resp)
		}
	}
	switch {
	case len(resps) == 0:
		return nil
	case !batch:
		return encode(resps[0])
	}
	return encode(resps)
}

// serveOne makes one call and returns its response, nil for a notification.
func (s *Server) serveOne(ctx context.Context, r request, ws *wsConn) *api.Response {
	if r.err != nil {
		if r.id == nil {
			return nil
		}
		return &api.Response{JSONRPC: api.Version, ID: r.id, Error: r.err}
	}
	start := time.Now()
	result, err := s.call(ctx, r.req, ws)
	took := time.Since(start)
	s.log.Debug("api call", "method", r.req.Method, "duration", took, "error", err)
	if s.opts.Observe != nil {
		s.opts.Observe(s.knownMethod(r.req.Method), err, took)
	}
	if r.id == nil {
		return nil
	}
	if err != nil {
		return &api.Response{JSONRPC: api.Version, ID: r.id, Error: toError(err)}
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return errorResponse(r.id, api.CodeInternal, "encode result: "+err.Error())
	}
	return &api.Response{JSONRPC: api.Version, ID: r.id, Result: raw}
}

func (s *Server) call(ctx context.Context, req api.Request, ws *wsConn) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("api method panicked", "method", req.Method, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, api.Errorf(api.CodeInternal, "internal error in %s", req.Method)
		}
	}()
	if h, ok := s.methods[req.Method]; ok {
		return h(ctx, req.Params)
	}
	if req.Method == api.MethodUnsubscribe {
		if ws == nil {
			return nil, api.Errorf(api.CodeNeedWebSocket, "subscriptions are served over WebSocket at %s", api.PathWebSocket)
		}
		return ws.unsubscribe(req.Params)
	}
	if src, ok := s.sources[req.Method]; ok {
		if ws == nil {
			return nil, api.Errorf(api.CodeNeedWebSocket, "%s is a subscription: call it over WebSocket at %s", req.Method, api.PathWebSocket)
		}
		return ws.subscribe(ctx, req.Params, src)
	}
	return nil, api.Errorf(api.CodeMethodNotFound, "method not found: %s", req.Method)
}

func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	case string(id) == "null":
		return true
	}
	return false
}

func validIDOrNull(id json.RawMessage) json.RawMessage {
	if id != nil && validID(id) {
		return id
	}
	return nil
}

func errorResponse(id json.RawMessage, code int, msg string) *api.Response {
	if id == nil {
		id = json.RawMessage("null")
	}
	return &api.Response{JSONRPC: api.Version, ID: id, Error: &api.Error{Code: code, Message: msg}}
}

// encode marshals a response without HTML escaping, so that error
// messages keep their < and > as written.
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every value encoded here is built from valid JSON parts.
		panic("rpc: encode response: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
