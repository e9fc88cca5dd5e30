package p2p

import (
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Topic returns the host's handle on a gossipsub topic, joining it on
// first use. Gossipsub lets a host join a topic once, so every part of a
// node that publishes or subscribes to one shares this handle; the
// topics stay joined until the host closes.
func (h *Host) Topic(name string) (*pubsub.Topic, error) {
	h.topicsMu.Lock()
	defer h.topicsMu.Unlock()
	if t, ok := h.topics[name]; ok {
		return t, nil
	}
	t, err := h.PubSub.Join(name)
	if err != nil {
		return nil, fmt.Errorf("join topic %s: %w", name, err)
	}
	if h.topics == nil {
		h.topics = map[string]*pubsub.Topic{}
	}
	h.topics[name] = t
	return t, nil
}
