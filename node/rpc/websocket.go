package rpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/gorilla/websocket"
)

const (
	// wsOutbound is how many messages may wait for a slow client before the
	// server drops the connection.
	wsOutbound  = 256
	wsWriteWait = 10 * time.Second
	// maxSubscriptions bounds the subscriptions on one connection.
	maxSubscriptions = 64
)

var upgrader = websocket.Upgrader{
	HandshakeTimeout: wsWriteWait,
	ReadBufferSize:   4096,
	WriteBufferSize:  4096,
	// The guard middleware has already checked Origin and Host.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsConn is one WebSocket client: a reader that serves requests, a writer
// that owns the socket's write side, and a goroutine per subscription.
type wsConn struct {
	srv    *Server
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	out    chan []byte
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]context.CancelFunc
}

// maxInFlight bounds the requests one connection may have running at once.
const maxInFlight = 16

// repliedKey carries, in a request's context, a channel closed once the
// request's reply is queued: a subscription holds its events until then.
type repliedKey struct{}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeHTTPError(w, http.StatusServiceUnavailable, api.CodeFailed, "server is shutting down")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "error", err)
		return
	}
	conn.SetReadLimit(s.opts.MaxRequestBytes)
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{srv: s, conn: conn, ctx: ctx, cancel: cancel, out: make(chan []byte, wsOutbound), subs: map[string]context.CancelFunc{}}

	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	c.wg.Add(1)
	go c.writeLoop()
	c.readLoop()
	c.close()
	c.wg.Wait()
	conn.Close()
}

// close stops the connection's goroutines; the socket is closed by its owner.
func (c *wsConn) close() {
	c.cancel()
	_ = c.conn.SetReadDeadline(time.Now())
}

// pongWait is how long the peer may go without answering a ping.
func (c *wsConn) pongWait() time.Duration {
	return c.srv.opts.PingInterval * 5 / 2
}

// readLoop serves the peer's messages. The upgrade has cleared the HTTP
// server's deadlines: from here the read deadline moves with each pong, so
// that a live subscription outlasts the HTTP read timeout and a dead peer
// is dropped; each write sets its own deadline.
func (c *wsConn) readLoop() {
	inFlight := make(chan struct{}, maxInFlight)
	_ = c.conn.SetReadDeadline(time.Now().Add(c.pongWait()))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(c.pongWait()))
	})
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			if c.ctx.Err() == nil && !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.srv.log.Debug("websocket read ended", "error", err)
			}
			return
		}
		if typ != websocket.TextMessage {
			c.send(encode(errorResponse(nil, api.CodeParseError, "parse error: binary messages are not JSON-RPC")))
			continue
		}
		// Each request runs on its own, so a long call does not hold up
		// others, pongs or subscriptions on the same socket.
		select {
		case inFlight <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-inFlight }()
			replied := make(chan struct{})
			defer close(replied)
			reply := c.srv.handleMessage(context.WithValue(c.ctx, repliedKey{}, replied), msg, c)
			if reply != nil {
				c.send(reply)
			}
		}()
	}
}

func (c *wsConn) writeLoop() {
	defer c.wg.Done()
	ping := time.NewTicker(c.srv.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.ctx.Done():
			_ = c.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server closing"), time.Now().Add(time.Second))
			return
		case msg := <-c.out:
			_ = c.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.close()
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
				c.close()
				return
			}
		}
	}
}

// send queues a message; a client too slow to drain its queue is dropped.
func (c *wsConn) send(msg []byte) bool {
	select {
	case c.out <- msg:
		return true
	case <-c.ctx.Done():
		return false
	default:
		c.srv.log.Warn("websocket client too slow, closing connection", "queued", wsOutbound)
		c.close()
		return false
	}
}

func (c *wsConn) subscribe(reqCtx context.Context, params json.RawMessage, src Source) (string, error) {
	c.mu.Lock()
	if len(c.subs) >= maxSubscriptions {
		c.mu.Unlock()
		return "", api.Errorf(api.CodeFailed, "too many subscriptions on this connection (max %d)", maxSubscriptions)
	}
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(c.ctx)
	events, err := src(ctx, params)
	if err != nil {
		cancel()
		return "", err
	}
	id := newSubscriptionID()
	c.mu.Lock()
	c.subs[id] = cancel
	c.mu.Unlock()
	replied, ok := reqCtx.Value(repliedKey{}).(chan struct{})
	if !ok {
		replied = make(chan struct{})
		close(replied)
	}

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-replied:
		case <-ctx.Done():
		}
		defer func() {
			c.mu.Lock()
			delete(c.subs, id)
			c.mu.Unlock()
			cancel()
		}()
		for ev := range events {
			raw, err := json.Marshal(ev)
			if err != nil {
				c.srv.log.Error("encode subscription event", "error", err)
				continue
			}
			n := api.Notification{JSONRPC: api.Version, Method: api.NotificationMethod,
				Params: api.NotificationParams{Subscription: id, Result: raw}}
			if !c.send(encode(n)) {
				cancel()
				for range events { // let the source finish and close its channel
				}
				return
			}
		}
	}()
	return id, nil
}

func (c *wsConn) unsubscribe(params json.RawMessage) (bool, error) {
	var p api.UnsubscribeParams
	if err := DecodeParams(params, &p); err != nil {
		return false, err
	}
	c.mu.Lock()
	cancel, ok := c.subs[p.Subscription]
	c.mu.Unlock()
	if !ok {
		return false, api.Errorf(api.CodeNotFound, "no subscription %q on this connection", p.Subscription)
	}
	cancel()
	return true, nil
}

func newSubscriptionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
