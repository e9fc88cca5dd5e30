package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// announceBench measures the delivery of signed job announcements from one
// host to n-1 others, all in this process, each receiver checking every
// announcement as the jobs topic's validator does.
func announceBench(n, messages int, every time.Duration) error {
	const topicName = "/cyxwiz/bench/1"
	hosts := make([]*p2p.Host, n)
	for i := range hosts {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return err
		}
		cfg := p2p.LocalConfig()
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.RelayClient = false
		h, err := p2p.New(p2p.Params{Key: key, Config: cfg, ScoredTopics: []string{topicName}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer h.Close()
		hosts[i] = h
	}
	ctx := context.Background()
	// The announcer is connected to every host, as a requester is to the
	// providers that bid for its jobs; the hosts are also linked in a ring.
	for i := 1; i < n; i++ {
		for _, t := range []int{0, i - 1} {
			if err := hosts[i].Connect(ctx, peer.AddrInfo{ID: hosts[t].ID(), Addrs: hosts[t].Addrs()}); err != nil {
				return err
			}
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	received := 0
	var wg sync.WaitGroup
	var topics []*pubsub.Topic
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	validate := func(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		env, err := market.ParseEnvelope(msg.Data)
		if err != nil {
			return pubsub.ValidationReject
		}
		var a market.Announcement
		signer, err := env.Open(market.TypeAnnouncement, &a)
		if err != nil || market.CheckAnnouncement(a, signer, time.Now()) != nil {
			return pubsub.ValidationReject
		}
		msg.ValidatorData = a
		return pubsub.ValidationAccept
	}
	for _, h := range hosts {
		if err := h.PubSub.RegisterTopicValidator(topicName, validate); err != nil {
			return err
		}
		t, err := h.PubSub.Join(topicName)
		if err != nil {
			return err
		}
		topics = append(topics, t)
		sub, err := t.Subscribe(pubsub.WithBufferSize(4096))
		if err != nil {
			return err
		}
		if h == hosts[0] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := sub.Next(subCtx)
				if err != nil {
					return
				}
				sent := msg.ValidatorData.(market.Announcement).IssuedAt
				mu.Lock()
				lat = append(lat, time.Since(sent))
				received++
				mu.Unlock()
			}
		}()
	}
	// Let the mesh form: every subscriber has mesh peers for the topic.
	for range 100 {
		ready := 0
		for i, t := range topics {
			if len(t.ListPeers()) >= min(4, n-1) || i == 0 && len(t.ListPeers()) > 0 {
				ready++
			}
		}
		if ready == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	key := hosts[0].Peerstore().PrivKey(hosts[0].ID())
	spec, err := market.ParseSpec([]byte(`{"kind":"wasm","wasm":{"module":"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},` +
		`"inputs":[{"name":"data.csv","cid":"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}],` +
		`"outputs":[{"name":"result","path":"/out/result.txt"}]}`))
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range hosts[0].Addrs() {
		addrs = append(addrs, a.String())
	}
	size := 0
	for i := range messages {
		now := time.Now().UTC()
		env, err := market.Seal(key, market.TypeAnnouncement, market.Announcement{JobID: fmt.Sprintf("BENCH%021d", i),
			Requester: hosts[0].ID().String(), RequesterAddrs: addrs, Attempt: 1, Spec: spec, IssuedAt: now, BidsUntil: now.Add(time.Second)})
		if err != nil {
			return err
		}
		data, _ := env.Marshal()
		size = len(data)
		if err := topics[0].Publish(ctx, data); err != nil {
			return err
		}
		time.Sleep(every)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := received >= messages*(n-1)
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := messages * (n - 1)
	fmt.Printf("\nannouncement delivery (gossipsub, %d hosts in one process, %d signed announcements of %d bytes every %s)\n", n, messages, size, every)
	fmt.Printf("  delivered %d of %d (%.2f%%), latency p50 %.1fms p99 %.1fms   target: 100%%, p99 <= 25 ms\n",
		received, want, 100*float64(received)/float64(want), ms(pct(lat, 50)), ms(pct(lat, 99)))
	return nil
}
