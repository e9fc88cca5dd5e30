package serving

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/cyxwiz/cyxwiz/compute/train"
	"github.com/cyxwiz/cyxwiz/internal/strictjson"
	"github.com/cyxwiz/cyxwiz/market"
	"github.com/cyxwiz/cyxwiz/p2p/wire"
)

// Defaults of Params.
const (
	DefaultWindow          = 2 * time.Millisecond
	DefaultMaxQueue        = 256
	DefaultMaxPerCaller    = 8
	DefaultMaxCalls        = 64
	DefaultMaxRequestBytes = 1 << 20
	// callTimeout bounds one call on the provider, from its first byte to
	// its answer.
	callTimeout = 30 * time.Second
	// requestTimeout bounds the reading of a request.
	requestTimeout = 10 * time.Second
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
	// MaxPerCaller bounds the calls one caller has open at once (default
	// DefaultMaxPerCaller).
	MaxPerCaller int
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
}

// Server serves models on InferProtocol. Close stops it.
type Server struct {
	p   Params
	log *slog.Logger

	mu       sync.Mutex
	services map[string]*service   // by instance
	names    map[string][]*service // by service name, the instances serving it
	next     int                   // turns among a name's instances
	callers  map[peer.ID]int
	open     int // calls open from all callers
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
	if p.MaxRequestBytes <= 0 {
		p.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if p.AnnounceEvery <= 0 {
		p.AnnounceEvery = DefaultAnnounceEvery
	}
	s := &Server{p: p, log: p.Logger, services: map[string]*service{}, names: map[string][]*service{},
		callers: map[peer.ID]int{}, announce: make(chan string, 64), quit: make(chan struct{})}
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
	svc := newService(name, m, s.p.Window, s.p.MaxQueue)
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

// Answer is the one frame that answers a request: a Reply and, when it is
// CodeOK, the signed InferResult.
type Answer struct {
	Reply  wire.Reply       `json:"reply"`
	Result *market.Envelope `json:"result,omitempty"`
}

// maxAnswerBytes bounds an answer: a reply and a signed result.
const maxAnswerBytes = market.MaxEnvelopeBytes + wire.MaxReplyBytes

func (s *Server) handle(st network.Stream) {
	defer st.Close()
	start := time.Now()
	code, examples := "reset", 0
	if s.p.Observe != nil {
		defer func() { s.p.Observe(code, examples, time.Since(start)) }()
	}
	deadline := time.Now().Add(callTimeout)
	_ = st.SetWriteDeadline(deadline)
	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	w := bufio.NewWriter(st)
	refuse := func(c wire.Code, format string, args ...any) {
		code = string(c)
		_ = wire.WriteJSON(w, Answer{Reply: wire.Reply{Code: c, Reason: fmt.Sprintf(format, args...)}})
	}
	caller := st.Conn().RemotePeer()
	if err := s.acquire(caller); err != nil {
		refuse(wire.CodeFull, "%v", err)
		return
	}
	defer s.release(caller)
	data, err := readRequest(bufio.NewReader(st), s.p.MaxRequestBytes)
	if errors.Is(err, wire.ErrFrameTooLarge) {
		refuse(wire.CodeRejected, "the request is larger than %d bytes", s.p.MaxRequestBytes)
		return
	}
	if err != nil {
		_ = st.Reset()
		return
	}
	var req market.InferRequest
	if err := strictjson.Decode(data, &req); err != nil {
		refuse(wire.CodeRejected, "bad request: %v", err)
		return
	}
	svc := s.service(req.Service)
	if svc == nil {
		refuse(wire.CodeRejected, "no service %q here", req.Service)
		return
	}
	if err := svc.fits(req.Examples); err != nil {
		refuse(wire.CodeRejected, "%v", err)
		return
	}
	examples = len(req.Examples)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	outputs, err := svc.call(ctx, req.Examples)
	switch {
	case errors.Is(err, errQueueFull):
		refuse(wire.CodeFull, "%v", err)
		return
	case err != nil:
		refuse(wire.CodeFailed, "%v", err)
		return
	}
	for i, row := range outputs {
		for _, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				refuse(wire.CodeRejected, "the model's outputs for example %d are not finite numbers (inputs out of its range?)", i)
				return
			}
		}
	}
	env, err := market.Seal(s.p.Key, market.TypeInferResult, market.InferResult{
		Service: req.Service, Request: market.RequestHash(data), Outputs: outputs, IssuedAt: time.Now().UTC()})
	if err != nil {
		refuse(wire.CodeFailed, "sign the answer: %v", err)
		return
	}
	if err := wire.WriteJSON(w, Answer{Reply: wire.OK, Result: &env}); err != nil {
		s.log.Debug("infer answer not sent", "caller", caller, "error", err)
		return
	}
	code = string(wire.CodeOK)
}

// readRequest reads one frame of at most limit bytes, taking memory as
// the bytes come rather than for the length announced.
func readRequest(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", wire.ErrFrameTooLarge, n, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err == nil && uint64(len(data)) != n {
		err = io.ErrUnexpectedEOF
	}
	return data, err
}
