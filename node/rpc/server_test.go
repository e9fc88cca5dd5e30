package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

const testToken = "0123456789abcdef0123456789abcdef"

type echoParams struct {
	Text  string `json:"text"`
	Times int    `json:"times"`
}

type nestedParams struct {
	CID    string            `json:"cid"`
	Inputs []echoParams      `json:"inputs"`
	Meta   map[string]string `json:"meta"`
	Inner  *echoParams       `json:"inner"`
}

// testServer is a Server with the test methods, and a record of the
// test.touch calls made on it.
type testServer struct {
	*Server
	touched chan string
}

// newServer serves a few methods that exercise the transport: echo (typed
// params), nested (nested params), touch (records its text in touched),
// sleep (returns after ms milliseconds unless cancelled), fail (an
// application error), boom (a panic), and the subscriptions ticks (sends n
// events) and after (sends one event after ms milliseconds).
func newServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Token = testToken
	opts.AllowedOrigins = []string{"http://dashboard.example:8080"}
	s := &testServer{Server: NewServer(opts), touched: make(chan string, 100)}
	s.Register("test.echo", Method(func(_ context.Context, p echoParams) (string, error) {
		return strings.Repeat(p.Text, p.Times), nil
	}))
	s.Register("test.nested", Method(func(_ context.Context, p nestedParams) (int, error) {
		return len(p.Inputs), nil
	}))
	s.Register("test.touch", Method(func(_ context.Context, p echoParams) (bool, error) {
		s.touched <- p.Text
		return true, nil
	}))
	s.Register("test.sleep", Method(func(ctx context.Context, p struct {
		MS int `json:"ms"`
	}) (string, error) {
		select {
		case <-time.After(time.Duration(p.MS) * time.Millisecond):
			return "slept", nil
		case <-ctx.Done():
			return "", fmt.Errorf("sleep cut short: %w", ctx.Err())
		}
	}))
	s.Register("test.fail", NoParams(func(context.Context) (any, error) {
		return nil, api.Errorf(api.CodeNotFound, "no such thing")
	}))
	s.Register("test.plainerror", NoParams(func(context.Context) (any, error) {
		return nil, errors.New("disk on fire")
	}))
	s.Register("test.boom", NoParams(func(context.Context) (any, error) { panic("boom") }))
	s.RegisterSubscription("test.ticks", func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p struct {
			N int `json:"n"`
		}
		if err := DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		ch := make(chan any)
		go func() {
			defer close(ch)
			for i := range p.N {
				select {
				case ch <- map[string]int{"tick": i}:
				case <-ctx.Done():
					return
				}
			}
			<-ctx.Done()
		}()
		return ch, nil
	})
	s.RegisterSubscription("test.after", func(ctx context.Context, raw json.RawMessage) (<-chan any, error) {
		var p struct {
			MS int `json:"ms"`
		}
		if err := DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		ch := make(chan any)
		go func() {
			defer close(ch)
			select {
			case <-time.After(time.Duration(p.MS) * time.Millisecond):
			case <-ctx.Done():
				return
			}
			select {
			case ch <- "later":
			case <-ctx.Done():
				return
			}
			<-ctx.Done()
		}()
		return ch, nil
	})
	return s
}

// newTestServer serves newServer's methods on an httptest server.
func newTestServer(t testing.TB, maxBytes int64) (*testServer, *httptest.Server) {
	t.Helper()
	s := newServer(t, Options{MaxRequestBytes: maxBytes})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return s, hs
}

func post(t *testing.T, hs *httptest.Server, body string, mutate func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, hs.URL+api.PathRPC, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(data))
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGuards(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	ok := `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a","times":2}}`
	tests := []struct {
		name       string
		mutate     func(*http.Request)
		wantStatus int
		wantCode   int
	}{
		{"good", nil, 200, 0},
		{"no token", func(r *http.Request) { r.Header.Del("Authorization") }, 401, api.CodeUnauthorized},
		{"wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401, api.CodeUnauthorized},
		{"basic auth", func(r *http.Request) { r.SetBasicAuth("u", testToken) }, 401, api.CodeUnauthorized},
		{"foreign origin", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }, 403, api.CodeForbidden},
		{"foreign origin without token", func(r *http.Request) {
			r.Header.Set("Origin", "http://evil.example")
			r.Header.Del("Authorization")
		}, 403, api.CodeForbidden},
		{"allowed origin", func(r *http.Request) { r.Header.Set("Origin", "http://dashboard.example:8080") }, 200, 0},
		{"own origin", func(r *http.Request) { r.Header.Set("Origin", "http://"+r.Host) }, 200, 0},
		{"rebinding host", func(r *http.Request) { r.Host = "evil.example:5250" }, 403, api.CodeForbidden},
		{"localhost host", func(r *http.Request) { r.Host = "localhost:5250" }, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, hs, ok, tt.mutate)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			var resp api.Response
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("body %q is not a JSON-RPC response: %v", body, err)
			}
			if tt.wantCode == 0 {
				if resp.Error != nil || string(resp.Result) != `"aa"` {
					t.Fatalf("got %s, want result \"aa\"", body)
				}
				return
			}
			if resp.Error == nil || resp.Error.Code != tt.wantCode {
				t.Fatalf("got %s, want error code %d", body, tt.wantCode)
			}
		})
	}
}

func TestCORSPreflight(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	for _, tt := range []struct {
		origin string
		want   int
	}{{"http://dashboard.example:8080", http.StatusNoContent}, {"http://evil.example", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodOptions, hs.URL+api.PathRPC, nil)
		req.Header.Set("Origin", tt.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("preflight from %s: status %d, want %d", tt.origin, resp.StatusCode, tt.want)
		}
		if tt.want == http.StatusNoContent && resp.Header.Get("Access-Control-Allow-Origin") != tt.origin {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin = %q", tt.origin, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

func TestBadInput(t *testing.T) {
	_, hs := newTestServer(t, 4096)
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		{"malformed json", `{"jsonrpc":"2.0","id":1,"method":`, 200, api.CodeParseError, "parse error"},
		{"vertical tab is not JSON white space", "\v" + `{"jsonrpc":"2.0","id":1,"method":"test.fail"}`, 200, api.CodeParseError, "parse error"},
		{"no-break space before a batch", "\u00a0" + `[{"jsonrpc":"2.0","id":1,"method":"test.fail"}]`, 200, api.CodeParseError, "parse error"},
		{"not an object", `42`, 200, api.CodeInvalidRequest, "invalid request"},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"test.echo"}`, 200, api.CodeInvalidRequest, "invalid request"},
		{"no method", `{"jsonrpc":"2.0","id":1}`, 200, api.CodeInvalidRequest, "invalid request"},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"test.echo"}`, 200, api.CodeInvalidRequest, "invalid request"},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"nope.nothing"}`, 200, api.CodeMethodNotFound, "nope.nothing"},
		{"unknown param", `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"txt":"a"}}`, 200, api.CodeInvalidParams, `unknown field "txt"`},
		{"wrong param type", `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"times":"x"}}`, 200, api.CodeInvalidParams, `field "times"`},
		{"positional params", `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":["a",2]}`, 200, api.CodeInvalidParams, "named parameters"},
		{"params to no-param method", `{"jsonrpc":"2.0","id":1,"method":"test.fail","params":{"x":1}}`, 200, api.CodeInvalidParams, "takes none"},
		{"application error", `{"jsonrpc":"2.0","id":1,"method":"test.fail"}`, 200, api.CodeNotFound, "no such thing"},
		{"plain error", `{"jsonrpc":"2.0","id":1,"method":"test.plainerror"}`, 200, api.CodeFailed, "disk on fire"},
		{"panic", `{"jsonrpc":"2.0","id":1,"method":"test.boom"}`, 200, api.CodeInternal, "internal error"},
		{"subscription over http", `{"jsonrpc":"2.0","id":1,"method":"test.ticks"}`, 200, api.CodeNeedWebSocket, "WebSocket"},
		{"empty batch", `[]`, 200, api.CodeInvalidRequest, "empty batch"},
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"` + strings.Repeat("x", 5000) + `"}}`, 413, api.CodeTooLarge, "larger than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, hs, tt.body, nil)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			var resp api.Response
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if resp.Error == nil || resp.Error.Code != tt.wantCode || !strings.Contains(resp.Error.Message, tt.wantMsg) {
				t.Fatalf("got %s, want code %d with %q", body, tt.wantCode, tt.wantMsg)
			}
		})
	}
	// The server still serves after all of that.
	if status, body := post(t, hs, `{"jsonrpc":"2.0","id":"x","method":"test.echo","params":{"text":"ok","times":1}}`, nil); status != 200 || body != `{"jsonrpc":"2.0","id":"x","result":"ok"}` {
		t.Fatalf("after bad input: %d %s", status, body)
	}
}

func TestBatchAndNotifications(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	status, body := post(t, hs, `[
		{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a","times":3}},
		{"jsonrpc":"2.0","method":"test.echo","params":{"text":"b","times":1}},
		{"jsonrpc":"2.0","id":2,"method":"nope"},
		7
	]`, nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	var resps []api.Response
	if err := json.Unmarshal([]byte(body), &resps); err != nil {
		t.Fatalf("batch reply %s: %v", body, err)
	}
	if len(resps) != 3 {
		t.Fatalf("got %d responses, want 3 (the notification gets none): %s", len(resps), body)
	}
	if string(resps[0].Result) != `"aaa"` || resps[1].Error.Code != api.CodeMethodNotFound || resps[2].Error.Code != api.CodeInvalidRequest {
		t.Fatalf("unexpected batch reply %s", body)
	}

	status, body = post(t, hs, `{"jsonrpc":"2.0","method":"test.echo","params":{"text":"b","times":1}}`, nil)
	if status != http.StatusNoContent || body != "" {
		t.Fatalf("notification: got %d %q, want 204 and no body", status, body)
	}

	big := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"test.fail"},`, MaxBatch) + `{"jsonrpc":"2.0","id":1,"method":"test.fail"}]`
	if _, body := post(t, hs, big, nil); !strings.Contains(body, "exceeds") {
		t.Fatalf("oversized batch: %s", body)
	}
}

func dialWS(t *testing.T, hs *httptest.Server, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
		hdr.Set("Authorization", "Bearer "+testToken)
	}
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+api.PathWebSocket, hdr)
}

func TestWebSocketSubscription(t *testing.T) {
	s, hs := newTestServer(t, 1<<20)
	conn, _, err := dialWS(t, hs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))

	// A plain call works over the socket too.
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"w","times":2}}`)); err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	read := func() error {
		resp = api.Response{}
		return conn.ReadJSON(&resp)
	}
	if err := read(); err != nil || string(resp.Result) != `"ww"` {
		t.Fatalf("call over websocket: %+v %v", resp, err)
	}

	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":2,"method":"test.ticks","params":{"n":3}}`)); err != nil {
		t.Fatal(err)
	}
	if err := read(); err != nil || resp.Error != nil {
		t.Fatalf("subscribe: %+v %v", resp, err)
	}
	var subID string
	if err := json.Unmarshal(resp.Result, &subID); err != nil || subID == "" {
		t.Fatalf("subscription id %s: %v", resp.Result, err)
	}
	for i := range 3 {
		var n api.Notification
		if err := conn.ReadJSON(&n); err != nil {
			t.Fatal(err)
		}
		want := `{"tick":` + string(rune('0'+i)) + `}`
		if n.Method != api.NotificationMethod || n.Params.Subscription != subID || string(n.Params.Result) != want {
			t.Fatalf("notification %d = %+v, want %s on %s", i, n, want, subID)
		}
	}

	conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":3,"method":"rpc.unsubscribe","params":{"subscription":"`+subID+`"}}`))
	if err := read(); err != nil || string(resp.Result) != "true" {
		t.Fatalf("unsubscribe: %+v %v", resp, err)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":4,"method":"rpc.unsubscribe","params":{"subscription":"`+subID+`"}}`))
	if err := read(); err != nil || resp.Error == nil || resp.Error.Code != api.CodeNotFound {
		t.Fatalf("second unsubscribe: %+v %v", resp, err)
	}

	// Malformed input over the socket gets an error and the socket stays up.
	conn.WriteMessage(websocket.TextMessage, []byte(`{not json`))
	if err := read(); err != nil || resp.Error == nil || resp.Error.Code != api.CodeParseError {
		t.Fatalf("malformed message: %+v %v", resp, err)
	}

	// An open subscription ends when the server closes.
	conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":5,"method":"test.ticks","params":{"n":0}}`))
	if err := read(); err != nil || resp.Error != nil {
		t.Fatalf("subscribe again: %+v %v", resp, err)
	}
	s.Close()
	if _, _, err := conn.ReadMessage(); err == nil {
		t.Fatal("socket still open after server Close")
	}
}

func TestWebSocketGuards(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	if _, resp, err := dialWS(t, hs, http.Header{}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("no token: err %v, resp %v; want 401", err, resp)
	}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+testToken)
	hdr.Set("Origin", "http://evil.example")
	if _, resp, err := dialWS(t, hs, hdr); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: err %v, resp %v; want 403", err, resp)
	}
}

func TestClientAgainstServer(t *testing.T) {
	_, hs := newTestServer(t, 1<<20)
	c := api.NewClient(strings.TrimPrefix(hs.URL, "http://"), testToken)
	ctx := context.Background()
	var out string
	if err := c.Call(ctx, "test.echo", echoParams{Text: "c", Times: 2}, &out); err != nil || out != "cc" {
		t.Fatalf("Call = %q, %v; want cc", out, err)
	}
	err := c.Call(ctx, "test.fail", nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Fatalf("Call(test.fail) error = %v, want code %d", err, api.CodeNotFound)
	}
	sub, err := c.Subscribe(ctx, "test.ticks", map[string]int{"n": 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case ev := <-sub.Events():
			if want := `{"tick":` + string(rune('0'+i)) + `}`; string(ev) != want {
				t.Fatalf("event %d = %s, want %s", i, ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
	sub.Close()
	if err := sub.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
	bad := api.NewClient(strings.TrimPrefix(hs.URL, "http://"), "wrong")
	if err := bad.Call(ctx, "test.echo", nil, nil); !errors.As(err, &ae) || ae.Code != api.CodeUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
}
