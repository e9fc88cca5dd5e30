package rpc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/gorilla/websocket"
)

// startHTTP serves s as the node does, from HTTPServer on a LimitListener
// of maxConns connections, on a loopback port, and returns the address.
func startHTTP(t *testing.T, s *testServer, maxConns int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(LimitListener(ln, maxConns)); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	}()
	t.Cleanup(func() {
		hs.Close()
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

// rawRequest is an HTTP request for test.echo as the text that goes on the
// wire; the body follows it.
func rawRequest(body string) string {
	return "POST " + api.PathRPC + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + testToken +
		fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))
}

const echoBody = `{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"ok","times":1}}`

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readResponse reads one HTTP response and its body from conn, waiting at
// most wait.
func readResponse(conn net.Conn, wait time.Duration) (*http.Response, string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(body)), err
}

// trickle writes data to conn one byte every interval until it is all
// written, a write fails or stop is called; stop returns how many bytes
// went out.
func trickle(conn net.Conn, data string, interval time.Duration) (stop func() int) {
	quit := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for n < len(data) {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{data[n]}); err != nil {
				return
			}
			n++
		}
	}()
	return func() int {
		close(quit)
		return <-sent
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// mustEcho checks that the server at addr still answers an honest call, on
// a connection of its own.
func mustEcho(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+api.PathRPC, strings.NewReader(echoBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("honest call: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `{"jsonrpc":"2.0","id":1,"result":"ok"}`; strings.TrimSpace(string(body)) != want {
		t.Fatalf("honest call: got %d %s, want %s", resp.StatusCode, body, want)
	}
}

func TestSlowClientsAreCutOff(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		// sent goes out at once, trickled one byte at a time after it.
		sent, trickled string
		// wantStatus is the reply expected before the connection closes,
		// 0 for none.
		wantStatus int
	}{
		{
			name:     "headers byte by byte",
			opts:     Options{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 10 * time.Second},
			trickled: rawRequest(echoBody) + echoBody,
		},
		{
			name:       "body byte by byte",
			opts:       Options{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 100 * time.Millisecond},
			sent:       rawRequest(strings.Repeat(" ", 1000) + echoBody),
			trickled:   strings.Repeat(" ", 1000) + echoBody,
			wantStatus: http.StatusRequestTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startHTTP(t, newServer(t, tt.opts), 16)
			conn := dialTCP(t, addr)
			if _, err := io.WriteString(conn, tt.sent); err != nil {
				t.Fatal(err)
			}
			stop := trickle(conn, tt.trickled, 10*time.Millisecond)
			start := time.Now()
			br := bufio.NewReader(conn)
			_ = conn.SetReadDeadline(start.Add(5 * time.Second))
			if tt.wantStatus != 0 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					stop()
					t.Fatalf("read reply: %v, want HTTP %d", err, tt.wantStatus)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r api.Response
				if resp.StatusCode != tt.wantStatus || json.Unmarshal(body, &r) != nil || r.Error == nil || r.Error.Code != api.CodeParseError {
					t.Errorf("got %d %s, want %d with code %d", resp.StatusCode, body, tt.wantStatus, api.CodeParseError)
				}
			}
			_, err := io.Copy(io.Discard, br)
			sent := stop()
			if isTimeout(err) {
				t.Fatalf("connection still open after %s", time.Since(start))
			}
			if sent == len(tt.trickled) {
				t.Fatalf("the server read all %d trickled bytes before closing", sent)
			}
			mustEcho(t, addr)
		})
	}
}

func TestIdleConnectionIsClosed(t *testing.T) {
	// The read timeout outlasts the test: only the idle timeout can close
	// the connection in time.
	addr := startHTTP(t, newServer(t, Options{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, IdleTimeout: 100 * time.Millisecond}), 16)
	conn := dialTCP(t, addr)
	if _, err := io.WriteString(conn, rawRequest(echoBody)+echoBody); err != nil {
		t.Fatal(err)
	}
	resp, body, err := readResponse(conn, 5*time.Second)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("first request: %v %v %s, want 200 on a connection kept alive", err, resp, body)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read on the idle connection = %d, %v; want EOF once the server closes it", n, err)
	}
	mustEcho(t, addr)
}

func TestSlowMethodOutlivesReadAndWriteTimeouts(t *testing.T) {
	// A method may run past both timeouts (content.get waits on peers): the
	// read deadline must not cancel it, nor the write deadline drop its
	// reply.
	addr := startHTTP(t, newServer(t, Options{ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}), 16)
	conn := dialTCP(t, addr)
	body := `{"jsonrpc":"2.0","id":1,"method":"test.sleep","params":{"ms":400}}`
	if _, err := io.WriteString(conn, rawRequest(body)+body); err != nil {
		t.Fatal(err)
	}
	resp, got, err := readResponse(conn, 5*time.Second)
	if want := `{"jsonrpc":"2.0","id":1,"result":"slept"}`; err != nil || got != want {
		t.Fatalf("slow call: %v %v %s, want %s", err, resp, got, want)
	}
	mustEcho(t, addr)
}

func TestConnectionBound(t *testing.T) {
	const bound = 2
	addr := startHTTP(t, newServer(t, Options{}), bound)
	var held []net.Conn
	for range bound {
		conn := dialTCP(t, addr)
		if _, err := io.WriteString(conn, rawRequest(echoBody)+echoBody); err != nil {
			t.Fatal(err)
		}
		if resp, body, err := readResponse(conn, 5*time.Second); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v %s", len(held), err, body)
		}
		held = append(held, conn)
	}

	extra := dialTCP(t, addr)
	if _, err := io.WriteString(extra, rawRequest(echoBody)+echoBody); err != nil {
		t.Fatal(err)
	}
	if resp, body, err := readResponse(extra, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("connection %d of %d was served: %v %v %s", bound+1, bound, err, resp, body)
	}

	held[0].Close()
	if resp, body, err := readResponse(extra, 5*time.Second); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("waiting connection, once a slot is free: %v %s", err, body)
	}
	held[1].Close()
	extra.Close()
	mustEcho(t, addr)
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 1)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		dialTCP(t, inner.Addr().String())
	}
	next := func(wait time.Duration) net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(wait):
			return nil
		}
	}
	first := next(5 * time.Second)
	if first == nil {
		t.Fatal("no connection accepted")
	}
	if c := next(200 * time.Millisecond); c != nil {
		t.Fatal("a second connection was accepted while the first is open")
	}
	// A second Close must not free a second slot.
	first.Close()
	first.Close()
	second := next(5 * time.Second)
	if second == nil {
		t.Fatal("no connection accepted once the first closed")
	}
	defer second.Close()
	if c := next(200 * time.Millisecond); c != nil {
		t.Fatal("a third connection was accepted while the second is open")
	}
	ln.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}

func dialWSAddr(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+testToken)
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+api.PathWebSocket, hdr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	// Every HTTP timeout, and the pong wait (125 ms), is shorter than the
	// 600 ms the event takes: the socket lives on pongs alone.
	short := 100 * time.Millisecond
	addr := startHTTP(t, newServer(t, Options{ReadHeaderTimeout: short, ReadTimeout: short, WriteTimeout: short, IdleTimeout: short, PingInterval: 50 * time.Millisecond}), 16)
	conn := dialWSAddr(t, addr)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"test.after","params":{"ms":600}}`)); err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	if err := conn.ReadJSON(&resp); err != nil || resp.Error != nil {
		t.Fatalf("subscribe: %+v %v", resp, err)
	}
	start := time.Now()
	var n api.Notification
	if err := conn.ReadJSON(&n); err != nil || string(n.Params.Result) != `"later"` {
		t.Fatalf("event after %s: %+v %v, want \"later\"", time.Since(start), n, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(echoBody)); err != nil {
		t.Fatal(err)
	}
	resp = api.Response{}
	if err := conn.ReadJSON(&resp); err != nil || string(resp.Result) != `"ok"` {
		t.Fatalf("call after the event: %+v %v", resp, err)
	}
	mustEcho(t, addr)
}

func TestWebSocketDropsDeadPeer(t *testing.T) {
	s := newServer(t, Options{PingInterval: 50 * time.Millisecond})
	addr := startHTTP(t, s, 16)
	conn := dialWSAddr(t, addr)
	conn.SetPingHandler(func(string) error { return nil }) // a peer that never answers
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"test.ticks","params":{"n":0}}`)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for err == nil {
		_, _, err = conn.ReadMessage()
	}
	if isTimeout(err) {
		t.Fatalf("socket of a peer that answers no ping still open: %v", err)
	}
	mustEcho(t, addr)
}

// TestRefusedClientsHoldNoConnection: clients without the token are
// answered and their connections closed, so that they cannot hold every
// connection the API serves.
func TestRefusedClientsHoldNoConnection(t *testing.T) {
	const bound = 2
	addr := startHTTP(t, newServer(t, Options{}), bound)
	for i := range 2 * bound {
		conn := dialTCP(t, addr)
		req := "POST " + api.PathRPC + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(echoBody)) + echoBody
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, _, err := readResponse(conn, 5*time.Second)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Fatalf("client %d without a token: %v, %+v; want 401 and the connection closed", i, err, resp)
		}
	}
	mustEcho(t, addr)
}
