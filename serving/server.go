package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// Defaults of Params.
const (
	DefaultWindow          = 2 * time.Millisecond
	DefaultMaxQueue        = 256
	DefaultMaxPerCaller    = 64
	DefaultMaxCalls        = 256
	DefaultMaxStreams      = 8
	DefaultMaxRequestBytes = 1 << 20
	// callTimeout bounds one call, from its request to its answer.
	callTimeout = 30 * time.Second
	// requestTimeout bounds the reading of a request once its first byte
	// has come, and the writing of an answer.
	requestTimeout = 10 * time.Second
	// idleTimeout is how long a provider keeps a stream with no call open
	// and no request coming.
	idleTimeout = 2 * time.Minute
)

// Params configure a Server.
type Params struct {
	// Host carries the protocol; Key is its private key, which signs the
	// answers.
	Host host.Host
	Key  crypto.PrivKey
	// Logger receives the server's log lines.
	Logger *slog.Logger
	// Window is how long a batch waits for more calls once its first has
	// come (default DefaultWindow); 0 keeps the default, a negative value
	// runs every call alone.
	Window time.Duration
	// MaxQueue bounds the calls waiting for a batch, per service (default
	// DefaultMaxQueue); a call past it is refused.
	MaxQueue int
	// MaxPerCaller bounds the calls one caller has open at once, on all
	// its streams (default DefaultMaxPerCaller: a node calls on behalf of
	// all its users); a call past it is refused with CodeFull.
	MaxPerCaller int
	// MaxStreams bounds the streams one caller has open at once (default
	// DefaultMaxStreams, below the resource manager's own bound of inbound
	// streams per peer and protocol, so that a caller past it is refused
	// with CodeFull rather than reset); a Client opens at most
	// clientStreams to a provider.
	MaxStreams int
	// MaxCalls bounds the calls open at once from all callers (default
	// DefaultMaxCalls): peer IDs are cheap, so the per-caller bound alone
	// does not bound the total.
	MaxCalls int
	// MaxRequestBytes bounds one request (default DefaultMaxRequestBytes).
	MaxRequestBytes int
	// Announce, when set, tells the swarm that this node serves the
	// service name (a DHT provider record of ServiceKey(name)): once a
	// service starts, and every AnnounceEvery while it is served.
	Announce func(ctx context.Context, name string) error
	// AnnounceEvery is how often the services are announced again
	// (default DefaultAnnounceEvery).
	AnnounceEvery time.Duration
	// Observe, when set, is told of each call answered: its reply code
	// (or "reset" when it was cut off), its examples and its duration.
	Observe func(code string, examples int, d time.Duration)
	// ObserveBatch, when set, is told of each forward pass and its
	// examples.
	ObserveBatch func(examples int)
	// Charge, when set, takes the payment of each call before it is
	// queued: the caller, the service and the request's voucher (nil when
	// it has none). An error refuses the call with wire.CodePayment; a nil
	// Charge takes nothing.
	Charge func(caller peer.ID, service string, voucher []byte) (Charge, error)
}

// Charge is one call's payment. Done says the answer was sent; Undo
// gives the payment back when the call was not answered; Paid is the
// cumulative amount the caller's budget has been promised, which the
// answer reports.
type Charge interface {
	Paid() uint64
	Done()
	Undo()
}

// DefaultAnnounceEvery is how often a server announces its services
// again: well inside the DHT's provider record lifetime.
const DefaultAnnounceEvery = time.Hour

// ServiceKey is the CID under which the providers serving the service
// name announce themselves in the DHT.
func ServiceKey(name string) cid.Cid {
	sum, err := mh.Sum([]byte(wire.ServicePrefix+name), mh.SHA2_256, -1)
	if err != nil {
		panic(err) // SHA-256 is always there
	}
	return cid.NewCidV1(cid.Raw, sum)
}

// Stats count what a service has answered.
type Stats struct {
	// Calls and Examples answered, and the forward passes (batches) that
	// answered them.
	Calls, Examples, Batches int64
	// Latency is the sum over the calls answered of the time from their
	// request's arrival to their answer: Latency / Calls is the mean.
	Latency time.Duration
}

// Server serves models on InferProtocol: it reads the calls of each
// stream as they come, queues them for their model's batcher and writes
// each answer as its batch is done. Close stops it.
type Server struct {
	p   Params
	log *slog.Logger

	mu       sync.Mutex
	services map[string]*service   // by instance
	names    map[string][]*service // by service name, the instances serving it
	next     int                   // turns among a name's instances
	callers  map[peer.ID]int       // calls open, by caller
	streams  map[peer.ID]int       // streams open, by caller
	open     int                   // calls open from all callers
	closed   bool

	announce chan string // names to announce now
	quit     chan struct{}
	wg       sync.WaitGroup
}

// NewServer registers the protocol on p.Host and returns a server that
// serves no model yet.
func NewServer(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Window == 0 {
		p.Window = DefaultWindow
	}
	if p.MaxQueue <= 0 {
		p.MaxQueue = DefaultMaxQueue
	}
	if p.MaxPerCaller <= 0 {
		p.MaxPerCaller = DefaultMaxPerCaller
	}
	if p.MaxCalls <= 0 {
		p.MaxCalls = DefaultMaxCalls
	}
	if p.MaxStreams <= 0 {
		p.MaxStreams = DefaultMaxStreams
	}
	if p.MaxRequestBytes <= 0 {
		p.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if p.AnnounceEvery <= 0 {
		p.AnnounceEvery = DefaultAnnounceEvery
	}
	s := &Server{p: p, log: p.Logger, services: map[string]*service{}, names: map[string][]*service{},
		callers: map[peer.ID]int{}, streams: map[peer.ID]int{}, announce: make(chan string, 64), quit: make(chan struct{})}
	p.Host.SetStreamHandler(wire.InferProtocol, s.handle)
	if p.Announce != nil {
		s.wg.Add(1)
		go s.announceLoop()
	}
	return s
}

// announceLoop announces each service as it starts, and all of them
// every AnnounceEvery, until Close.
func (s *Server) announceLoop() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	tick := time.NewTicker(s.p.AnnounceEvery)
	defer tick.Stop()
	for {
		var names []string
		select {
		case name := <-s.announce:
			names = []string{name}
		case <-tick.C:
			s.mu.Lock()
			for name := range s.names {
				names = append(names, name)
			}
			s.mu.Unlock()
		case <-s.quit:
			return
		}
		for _, name := range names {
			actx, acancel := context.WithTimeout(ctx, time.Minute)
			if err := s.p.Announce(actx, name); err != nil && ctx.Err() == nil {
				s.log.Warn("announce service", "service", name, "error", err)
			}
			acancel()
		}
	}
}

// Errors of Serve.
var (
	ErrClosed    = errors.New("serving: closed")
	ErrDuplicate = errors.New("serving: the service is served already")
)

// Serve starts answering calls to the service name with m, as the
// instance id (a serve job); replicas on one node share the name, and
// calls take turns among them.
func (s *Server) Serve(id, name string, m *train.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, dup := s.services[id]; dup {
		return fmt.Errorf("%w: %s", ErrDuplicate, id)
	}
	svc := newService(name, s.p.Key, m, s.p.Window, s.p.MaxQueue)
	svc.observe = s.p.ObserveBatch
	s.services[id] = svc
	s.names[name] = append(s.names[name], svc)
	go svc.run()
	if s.p.Announce != nil {
		select {
		case s.announce <- name:
		default: // the next round announces it
		}
	}
	return nil
}

// Stop stops the instance id: calls waiting for it fail, and later ones
// go to another instance of its service, or are refused. It reports
// whether id was served.
func (s *Server) Stop(id string) bool {
	s.mu.Lock()
	svc, ok := s.services[id]
	if ok {
		delete(s.services, id)
		rest := slices.DeleteFunc(s.names[svc.name], func(v *service) bool { return v == svc })
		if len(rest) == 0 {
			delete(s.names, svc.name)
		} else {
			s.names[svc.name] = rest
		}
	}
	s.mu.Unlock()
	if ok {
		svc.stop()
	}
	return ok
}

// Stats returns what the instance id has answered so far.
func (s *Server) Stats(id string) (Stats, bool) {
	s.mu.Lock()
	svc, ok := s.services[id]
	s.mu.Unlock()
	if !ok {
		return Stats{}, false
	}
	return svc.stats(), true
}

// Close stops every service and the protocol. It is safe to call more than
// once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	svcs := s.services
	s.services, s.names = map[string]*service{}, map[string][]*service{}
	s.mu.Unlock()
	s.p.Host.RemoveStreamHandler(wire.InferProtocol)
	close(s.quit)
	s.wg.Wait()
	for _, svc := range svcs {
		svc.stop()
	}
	return nil
}

// acquire takes one of the caller's call slots and one of all callers';
// it says which bound refused it.
func (s *Server) acquire(caller peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.callers[caller] >= s.p.MaxPerCaller:
		return fmt.Errorf("too many calls at once from this caller (at most %d)", s.p.MaxPerCaller)
	case s.open >= s.p.MaxCalls:
		return fmt.Errorf("too many calls at once (at most %d)", s.p.MaxCalls)
	}
	s.callers[caller]++
	s.open++
	return nil
}

func (s *Server) release(caller peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if s.callers[caller]--; s.callers[caller] <= 0 {
		delete(s.callers, caller)
	}
}

// openStream takes one of the caller's stream slots.
func (s *Server) openStream(caller peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[caller] >= s.p.MaxStreams {
		return fmt.Errorf("too many streams at once from this caller (at most %d)", s.p.MaxStreams)
	}
	s.streams[caller]++
	return nil
}

func (s *Server) closeStream(caller peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[caller]--; s.streams[caller] <= 0 {
		delete(s.streams, caller)
	}
}

// service picks an instance of the service name, in turns.
func (s *Server) service(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.names[name]
	if len(all) == 0 {
		return nil
	}
	s.next++
	return all[s.next%len(all)]
}
