package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
	"github.com/cyxwiz/cyxwiz/serving"
)

// serviceRecordKey is where provider keeps its service record of the
// service name in the DHT.
func serviceRecordKey(provider peer.ID, name string) string {
	return wire.ServiceKeyPrefix + provider.String() + "/" + name
}

// openServiceRecord checks a service record stored under key: signed by
// the provider the key names, for the service it names, not expired.
func openServiceRecord(key string, value []byte, now time.Time) (market.ServiceRecord, error) {
	rest, ok := strings.CutPrefix(key, wire.ServiceKeyPrefix)
	if !ok {
		return market.ServiceRecord{}, fmt.Errorf("service key %q outside %s", key, wire.ServiceKeyPrefix)
	}
	idText, name, ok := strings.Cut(rest, "/")
	if !ok {
		return market.ServiceRecord{}, fmt.Errorf("service key %q names no service", key)
	}
	env, err := market.ParseEnvelope(value)
	if err != nil {
		return market.ServiceRecord{}, err
	}
	var r market.ServiceRecord
	signer, err := env.Open(market.TypeService, &r)
	if err != nil {
		return market.ServiceRecord{}, err
	}
	switch {
	case signer.String() != idText:
		return market.ServiceRecord{}, fmt.Errorf("service record under %s signed by %s", idText, signer)
	case r.Service != name:
		return market.ServiceRecord{}, fmt.Errorf("service record of %q under %q", r.Service, name)
	}
	return r, market.CheckServiceRecord(r, signer, now)
}

// serviceValidator accepts only valid service records and prefers the
// newest.
type serviceValidator struct{}

func (serviceValidator) Validate(key string, value []byte) error {
	_, err := openServiceRecord(key, value, time.Now())
	return err
}

func (serviceValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, v := range values {
		r, err := openServiceRecord(key, v, time.Now())
		if err != nil {
			continue
		}
		if best == -1 || r.Seq > bestSeq {
			best, bestSeq = i, r.Seq
		}
	}
	if best == -1 {
		return 0, errors.New("no valid service record")
	}
	return best, nil
}

// recordValidator validates every CyxWiz record in the DHT, by the prefix
// of its key.
type recordValidator struct{}

func (recordValidator) Validate(key string, value []byte) error {
	if strings.HasPrefix(key, wire.ServiceKeyPrefix) {
		return serviceValidator{}.Validate(key, value)
	}
	return capacityValidator{}.Validate(key, value)
}

func (recordValidator) Select(key string, values [][]byte) (int, error) {
	if strings.HasPrefix(key, wire.ServiceKeyPrefix) {
		return serviceValidator{}.Select(key, values)
	}
	return capacityValidator{}.Select(key, values)
}

// serviceOffer is what a provider offers for every service it serves:
// the price of a call and who is paid.
type serviceOffer struct {
	PricePerCall uint64
	Mint         string
	Payee        string
	ArbiterPeer  string
}

// deployment is a model this provider serves, as its service record
// describes it.
type deployment struct {
	name, model         string
	inputSize, outputSz int
	maxExamples         int
}

// deployments is the provider's registry of serve jobs: it hands each to
// the serving server and keeps what the service records say of them.
type deployments struct {
	srv   *serving.Server
	host  *p2p.Host
	key   crypto.PrivKey
	offer serviceOffer
	// ttl is how long a service record lives; it is published again well
	// before (serving's AnnounceEvery).
	ttl time.Duration

	mu   sync.Mutex
	byID map[string]deployment
	// ended, when set, is told of a service no longer served here.
	ended func(service string)
}

// Serve implements serve.Registry.
func (d *deployments) Serve(id, name, model string, m *train.Model) error {
	d.mu.Lock()
	d.byID[id] = deployment{name: name, model: model, inputSize: m.InputShape().Size(), outputSz: m.OutputSize(), maxExamples: m.MaxBatch()}
	d.mu.Unlock()
	if err := d.srv.Serve(id, name, m); err != nil {
		d.mu.Lock()
		delete(d.byID, id)
		d.mu.Unlock()
		return err
	}
	return nil
}

// Stop implements serve.Registry. When the last instance of a service
// here stops, its call budgets are settled.
func (d *deployments) Stop(id string) bool {
	// The server stops first: a call it still takes finds the deployment's
	// price, and is charged.
	stopped := d.srv.Stop(id)
	d.mu.Lock()
	dep, ok := d.byID[id]
	delete(d.byID, id)
	last := ok
	for _, other := range d.byID {
		last = last && other.name != dep.name
	}
	ended := d.ended
	d.mu.Unlock()
	if last && ended != nil {
		ended(dep.name)
	}
	return stopped
}

// record returns the service record of the service name, when a serve job
// here serves it.
func (d *deployments) record(name string) (market.ServiceRecord, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dep := range d.byID {
		if dep.name != name {
			continue
		}
		now := time.Now().UTC()
		r := market.ServiceRecord{Service: name, Model: dep.model, Provider: d.host.ID().String(),
			InputSize: dep.inputSize, OutputSize: dep.outputSz, MaxExamples: dep.maxExamples,
			MaxRequestBytes: serving.DefaultMaxRequestBytes, MaxPerCaller: serving.DefaultMaxPerCaller,
			Seq: uint64(now.UnixNano()), IssuedAt: now, ExpiresAt: now.Add(d.ttl)}
		for _, a := range d.host.Addrs() {
			if len(r.Addrs) < 8 {
				r.Addrs = append(r.Addrs, a.String())
			}
		}
		if d.offer.PricePerCall > 0 {
			r.PricePerCall, r.Mint, r.Payee, r.ArbiterPeer = d.offer.PricePerCall, d.offer.Mint, d.offer.Payee, d.offer.ArbiterPeer
		}
		return r, true
	}
	return market.ServiceRecord{}, false
}

// announce tells the swarm that this node serves the service name: a
// provider record of its key, and its signed service record.
func (d *deployments) announce(ctx context.Context, name string) error {
	if err := d.host.DHT.Provide(ctx, serving.ServiceKey(name), true); err != nil {
		return fmt.Errorf("announce service %s: %w", name, err)
	}
	r, ok := d.record(name)
	if !ok {
		return nil // it stopped meanwhile
	}
	env, err := market.Seal(d.key, market.TypeService, r)
	if err != nil {
		return err
	}
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	if err := d.host.DHT.PutValue(ctx, serviceRecordKey(d.host.ID(), name), data); err != nil {
		return fmt.Errorf("put service record of %s: %w", name, err)
	}
	return nil
}

// findServiceRecord reads the service record that provider keeps of the
// service name.
func findServiceRecord(ctx context.Context, h *p2p.Host, provider peer.ID, name string) (market.ServiceRecord, error) {
	key := serviceRecordKey(provider, name)
	data, err := h.DHT.GetValue(ctx, key)
	if err != nil {
		return market.ServiceRecord{}, fmt.Errorf("service record of %s on %s: %w", name, provider, err)
	}
	return openServiceRecord(key, data, time.Now())
}
