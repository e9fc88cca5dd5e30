package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/node/api"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
)

// subscriberBuffer is how many events a subscriber may fall behind before
// events to it are dropped.
const subscriberBuffer = 256

// peerEvents turns the host's connectedness events into api.PeerEvent and
// fans them out to subscribers.
type peerEvents struct {
	log  *slog.Logger
	sub  event.Subscription
	done chan struct{}

	mu   sync.Mutex
	subs map[chan any]struct{}
}

func newPeerEvents(h *p2p.Host, log *slog.Logger) (*peerEvents, error) {
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("subscribe to peer events: %w", err)
	}
	pe := &peerEvents{log: log, sub: sub, done: make(chan struct{}), subs: map[chan any]struct{}{}}
	go pe.run()
	return pe, nil
}

func (pe *peerEvents) run() {
	defer close(pe.done)
	for e := range pe.sub.Out() {
		ev := e.(event.EvtPeerConnectednessChanged)
		var state string
		switch ev.Connectedness {
		case network.Connected:
			state = "connected"
		case network.NotConnected:
			state = "disconnected"
		default: // limited (relayed) connections are not reported
			continue
		}
		pe.publish(api.PeerEvent{ID: ev.Peer.String(), State: state, Time: time.Now().UTC()})
	}
}

func (pe *peerEvents) publish(ev any) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	for ch := range pe.subs {
		select {
		case ch <- ev:
		default:
			pe.log.Warn("peer event dropped: subscriber is behind")
		}
	}
}

// subscribe returns a channel of events that is closed when ctx ends.
func (pe *peerEvents) subscribe(ctx context.Context) <-chan any {
	ch := make(chan any, subscriberBuffer)
	pe.mu.Lock()
	pe.subs[ch] = struct{}{}
	pe.mu.Unlock()
	context.AfterFunc(ctx, func() {
		pe.mu.Lock()
		delete(pe.subs, ch)
		pe.mu.Unlock()
		close(ch)
	})
	return ch
}

// close stops the feed. Subscribers end with their own contexts.
func (pe *peerEvents) close() {
	pe.sub.Close()
	<-pe.done
}
