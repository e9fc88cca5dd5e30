package rpc

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
)

// HandleStream adds an HTTP route for a request or a reply that is a
// byte stream rather than JSON-RPC (content uploads and downloads). It
// sits behind the same guards as the RPC: Host, Origin and the bearer
// token. A stream has no overall deadline: each read of its body and each
// write of its reply must make progress within the server's read and
// write timeouts. Register every route before serving.
func (s *Server) HandleStream(pattern string, h http.Handler) {
	if _, dup := s.streams[pattern]; dup {
		panic("rpc: duplicate stream route " + pattern)
	}
	s.streams[pattern] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: s.opts.ReadTimeout}
		h.ServeHTTP(&idleWriter{ResponseWriter: w, rc: rc, idle: s.opts.WriteTimeout}, r)
	})
}

// idleBody extends the connection's read deadline before each read.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.ReadCloser.Read(p)
}

// idleWriter extends the connection's write deadline before each write.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteStreamError answers a stream route's request with err as a
// JSON-RPC error object, with the HTTP status its code maps to. It is for
// errors found before any of the reply was written.
func WriteStreamError(w http.ResponseWriter, err error) {
	e := toError(err)
	status := http.StatusInternalServerError
	switch e.Code {
	case api.CodeInvalidParams, api.CodeInvalidRequest, api.CodeParseError:
		status = http.StatusBadRequest
	case api.CodeNotFound:
		status = http.StatusNotFound
	case api.CodeTooLarge:
		status = http.StatusRequestEntityTooLarge
	}
	var netErr interface{ Timeout() bool }
	if errors.As(err, &netErr) && netErr.Timeout() {
		status = http.StatusRequestTimeout
	}
	writeHTTPError(w, status, e.Code, e.Message)
}

// WriteStreamResult answers a stream route's request with result as a
// JSON-RPC response.
func WriteStreamResult(w http.ResponseWriter, result any) {
	raw, err := json.Marshal(result)
	if err != nil {
		WriteStreamError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(api.Response{JSONRPC: api.Version, ID: json.RawMessage("null"), Result: raw})
}
