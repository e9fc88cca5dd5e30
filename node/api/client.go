package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// maxResponseBytes bounds what the client reads from one response.
const maxResponseBytes = 64 << 20

// ErrNoDaemon is returned by FromRepo when no daemon runs on the repo.
var ErrNoDaemon = errors.New("no daemon is running on this repo")

// Client calls a daemon's JSON-RPC API. It is safe for concurrent use.
type Client struct {
	addr  string
	token string
	http  *http.Client
	ids   atomic.Uint64
}

// NewClient returns a client for the API at addr (host:port) that
// authenticates with token.
func NewClient(addr, token string) *Client {
	return &Client{addr: addr, token: token, http: &http.Client{}}
}

// FromRepo returns a client for the daemon running on the repo in dir,
// reading its address and token files.
func FromRepo(dir string) (*Client, error) {
	addr, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s): start one with 'cyxwiz daemon'", ErrNoDaemon, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read api address: %w", err)
	}
	token, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return nil, fmt.Errorf("read api token: %w", err)
	}
	return NewClient(strings.TrimSpace(string(addr)), strings.TrimSpace(string(token))), nil
}

// Addr returns the API address the client talks to.
func (c *Client) Addr() string { return c.addr }

// Call invokes method with params and decodes the result into result (which
// may be nil). A JSON-RPC error is returned as *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	req := Request{JSONRPC: Version, Method: method, ID: json.RawMessage(fmt.Sprint(c.ids.Add(1)))}
	if params != nil {
		p, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("%s: encode params: %w", method, err)
		}
		req.Params = p
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", method, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr+PathRPC, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+c.token)
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", method, err)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("%s: HTTP %s: %s", method, hresp.Status, bytes.TrimSpace(data))
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Result, result); err != nil {
		return fmt.Errorf("%s: decode result: %w", method, err)
	}
	return nil
}

// Subscription delivers the notifications of one subscription. Close ends it.
type Subscription struct {
	ID     string
	conn   *websocket.Conn
	events chan json.RawMessage
	done   chan struct{}
	quit   chan struct{}
	err    error
	once   sync.Once
}

// Events returns the channel of notification payloads. It is closed when the
// subscription ends; Err then says why.
func (s *Subscription) Events() <-chan json.RawMessage { return s.events }

// Err returns the reason the subscription ended, nil after Close.
func (s *Subscription) Err() error {
	<-s.done
	return s.err
}

// Close ends the subscription and waits for its reader to stop.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		close(s.quit)
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		s.conn.Close()
	})
	<-s.done
	return nil
}

// Subscribe opens a WebSocket, calls method with params and delivers its
// notifications until ctx ends or Close is called.
func (c *Client) Subscribe(ctx context.Context, method string, params any) (*Subscription, error) {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+c.token)
	conn, hresp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+c.addr+PathWebSocket, hdr)
	if err != nil {
		if hresp != nil {
			return nil, fmt.Errorf("%s: websocket: HTTP %s", method, hresp.Status)
		}
		return nil, fmt.Errorf("%s: websocket: %w", method, err)
	}
	conn.SetReadLimit(maxResponseBytes)
	req := Request{JSONRPC: Version, ID: json.RawMessage("1"), Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: encode params: %w", method, err)
		}
	}
	if err := conn.WriteJSON(req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: send: %w", method, err)
	}
	var resp Response
	if err := conn.ReadJSON(&resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: read: %w", method, err)
	}
	if resp.Error != nil {
		conn.Close()
		return nil, resp.Error
	}
	sub := &Subscription{conn: conn, events: make(chan json.RawMessage, 64), done: make(chan struct{}), quit: make(chan struct{})}
	if err := json.Unmarshal(resp.Result, &sub.ID); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: decode subscription id: %w", method, err)
	}
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	go func() {
		defer close(sub.done)
		defer close(sub.events)
		defer stop()
		for {
			var n Notification
			if err := conn.ReadJSON(&n); err != nil {
				select {
				case <-sub.quit:
				default:
					if ctx.Err() == nil {
						sub.err = fmt.Errorf("%s: %w", method, err)
					}
				}
				return
			}
			if n.Method != NotificationMethod || n.Params.Subscription != sub.ID {
				continue
			}
			select {
			case sub.events <- n.Params.Result:
			case <-sub.quit:
				return
			}
		}
	}()
	return sub, nil
}
