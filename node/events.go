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

// hub fans events out to subscribers by topic.
type hub struct {
	log  *slog.Logger
	mu   sync.Mutex
	subs map[string]map[chan any]struct{}
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, subs: map[string]map[chan any]struct{}{}}
}

func (h *hub) publish(topic string, ev any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[topic] {
		select {
		case ch <- ev:
		default:
			h.log.Warn("event dropped: subscriber is behind", "topic", topic)
		}
	}
}

// subscribe returns a channel of the topic's events, closed when ctx ends.
func (h *hub) subscribe(ctx context.Context, topic string) <-chan any {
	ch := make(chan any, subscriberBuffer)
	h.mu.Lock()
	if h.subs[topic] == nil {
		h.subs[topic] = map[chan any]struct{}{}
	}
	h.subs[topic][ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs[topic], ch)
		if len(h.subs[topic]) == 0 {
			delete(h.subs, topic)
		}
		h.mu.Unlock()
		close(ch)
	})
	return ch
}

// topicPeers carries api.PeerEvent.
const topicPeers = "peers"

// peerFeed turns the host's connectedness events into api.PeerEvent on the
// hub's peers topic.
type peerFeed struct {
	host   *p2p.Host
	events *hub
	sub    event.Subscription
	done   chan struct{}
}

// Start subscribes to the host's events and starts the goroutine that
// publishes them.
func (f *peerFeed) Start(context.Context) error {
	sub, err := f.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("subscribe to peer events: %w", err)
	}
	f.sub, f.done = sub, make(chan struct{})
	go func() {
		defer close(f.done)
		for e := range sub.Out() {
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
			f.events.publish(topicPeers, api.PeerEvent{ID: ev.Peer.String(), State: state, Time: time.Now().UTC()})
		}
	}()
	return nil
}

// Close ends the subscription and waits for the goroutine.
func (f *peerFeed) Close() error {
	err := f.sub.Close()
	<-f.done
	return err
}
