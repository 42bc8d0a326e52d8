package socketio

import (
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// Options configure a [Server]. The zero value of every field means its default.
type Options struct {
	// Engine configures the Engine.IO layer: heartbeat, payload limit, transports, CORS.
	Engine engineio.Options
	// Namespaces lists the namespaces clients may connect to, besides "/" and those made with
	// [Server.Of]; "*" allows any, each made on first use.
	Namespaces []string
	// ConnectTimeout closes a connection that has joined no namespace by then. Default 45s.
	ConnectTimeout time.Duration
	// Adapter makes each namespace's adapter. Default: [NewMemoryAdapter].
	Adapter AdapterFactory
	// MaxNamespacesPerConnection bounds the namespaces one connection may join (or be joining)
	// at once; a CONNECT beyond it is answered CONNECT_ERROR "Too many namespaces on this
	// connection (limit N)". 0: unlimited.
	MaxNamespacesPerConnection int
	// MaxRoomsPerSocket bounds the rooms a socket may be in, its own id room not counted; a
	// join beyond it (from Socket.Join, an admission, or an adapter's AddSockets) leaves the
	// socket out of the extra rooms, with a warning logged. 0: unlimited.
	MaxRoomsPerSocket int
	// MaxAttachments bounds the binary attachments one packet may announce; more closes the
	// connection with "parse error". Default 10.
	MaxAttachments int
	// EventsPerSecond bounds the events each socket may send, per second, with bursts of
	// EventBurst. An event beyond it is dropped, not handled; if the client asked for an ack,
	// it gets one with {"error":"rate limited"}. 0: unlimited.
	EventsPerSecond float64
	// EventBurst is the events a socket may send at once before EventsPerSecond applies.
	// Default: EventsPerSecond rounded up, at least 1.
	EventBurst int
	// Recovery configures connection state recovery; off by default. It needs an adapter that
	// is a [SessionStore], such as the in-memory one; a namespace whose adapter is not has no
	// recovery.
	Recovery RecoveryOptions
	// OnLimit, when set, is called with one of the Limit* names each time a client runs into a
	// limit: the place to count them. It must not block. (The Engine.IO limits are reported
	// through Engine.OnLimit.)
	OnLimit func(limit string)
	// Logger receives the package's logs. Default: slog.Default().
	Logger *slog.Logger
}

// The limits a client can run into at the Socket.IO layer, as passed to Options.OnLimit.
// The names are those of siobridge's [limits] settings.
const (
	LimitNamespaces  = "max_namespaces_per_connection"
	LimitRooms       = "max_rooms_per_socket"
	LimitAttachments = "max_attachments"
	LimitEventRate   = "events_per_second_per_socket"
)

// ErrRateLimited is the {"error":...} text an event dropped by EventsPerSecond is acked with.
const ErrRateLimited = "rate limited"

// Server is a Socket.IO v5 server. It is an http.Handler for the Socket.IO path.
type Server struct {
	opts Options
	eio  *engineio.Server
	log  *slog.Logger

	mu          sync.RWMutex
	namespaces  map[string]*Namespace
	onNamespace []func(*Namespace)
	closed      bool

	// wg counts authorizer goroutines, so Close can wait for them.
	wg sync.WaitGroup

	// stopSweep ends the recovery sweeper; sweepDone is closed when it has.
	stopSweep, sweepDone chan struct{}
	stopOnce             sync.Once
}

// NewServer returns a server with opts. Namespace "/" always exists.
func NewServer(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
	}
	if opts.Adapter == nil {
		opts.Adapter = NewMemoryAdapter
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxAttachments <= 0 {
		opts.MaxAttachments = defaultMaxAttachments
	}
	if opts.EventsPerSecond > 0 && opts.EventBurst <= 0 {
		opts.EventBurst = max(1, int(math.Ceil(opts.EventsPerSecond)))
	}
	if opts.Engine.Logger == nil {
		opts.Engine.Logger = opts.Logger
	}
	opts.Recovery.setDefaults()
	s := &Server{opts: opts, log: opts.Logger, namespaces: make(map[string]*Namespace)}
	if w := opts.Recovery.MaxDisconnection; w > 0 {
		// One ticker for every namespace's store; an expired session found before a sweep is
		// refused all the same.
		s.stopSweep, s.sweepDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(s.sweepDone)
			s.runSweeper(max(min(w/2, 30*time.Second), 10*time.Millisecond), s.stopSweep)
		}()
	}
	s.eio = engineio.NewServer(opts.Engine, s.newConn)
	s.Of("/")
	for _, name := range opts.Namespaces {
		if name != "*" {
			s.Of(name)
		}
	}
	return s
}

// Engine returns the Engine.IO server underneath.
func (s *Server) Engine() *engineio.Server { return s.eio }

// ServeHTTP serves the Socket.IO endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.eio.ServeHTTP(w, r) }

// Of returns the namespace called name ("/" if empty, a leading "/" added if missing),
// making it if it does not exist yet.
func (s *Server) Of(name string) *Namespace {
	name = normalizeNamespace(name)
	s.mu.RLock()
	ns := s.namespaces[name]
	s.mu.RUnlock()
	if ns != nil {
		return ns
	}
	s.mu.Lock()
	if ns = s.namespaces[name]; ns != nil {
		s.mu.Unlock()
		return ns
	}
	ns = newNamespace(s, name)
	s.namespaces[name] = ns
	hooks := s.onNamespace
	// The hooks run before the namespace can be returned to anyone else: the lock is held, so
	// a client connecting to a dynamic namespace finds its handlers set.
	for _, fn := range hooks {
		fn(ns)
	}
	s.mu.Unlock()
	return ns
}

// OnNamespace calls fn for every namespace that exists now and for each one made later,
// before any client can reach it: the place to set handlers on all namespaces, dynamic ones
// included. fn must not call Of or OnNamespace.
func (s *Server) OnNamespace(fn func(*Namespace)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onNamespace = append(s.onNamespace, fn)
	for _, ns := range s.namespaces {
		fn(ns)
	}
}

// Namespaces lists the namespaces that exist now.
func (s *Server) Namespaces() []*Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Namespace, 0, len(s.namespaces))
	for _, ns := range s.namespaces {
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b *Namespace) int {
		if a.name < b.name {
			return -1
		}
		return 1
	})
	return out
}

// Lookup returns the namespace called name if it exists or may be made (the Namespaces option
// allows it, or holds "*"), and nil otherwise. Unlike Of, it never makes a namespace that
// clients could not connect to.
func (s *Server) Lookup(name string) *Namespace { return s.lookup(normalizeNamespace(name)) }

// lookup returns the namespace a client may connect to, or nil.
func (s *Server) lookup(name string) *Namespace {
	s.mu.RLock()
	ns := s.namespaces[name]
	s.mu.RUnlock()
	if ns != nil {
		return ns
	}
	if slices.Contains(s.opts.Namespaces, "*") {
		return s.Of(name)
	}
	return nil
}

// Close disconnects every client with "server shutting down", closes the adapters and waits for
// the goroutines the server started.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.eio.Close()
	s.wg.Wait()
	if s.stopSweep != nil {
		s.stopOnce.Do(func() { close(s.stopSweep) })
		<-s.sweepDone
	}
	for _, ns := range s.Namespaces() {
		_ = ns.adapter.Close()
	}
}

func (s *Server) onLimit(limit string) {
	if s.opts.OnLimit != nil {
		s.opts.OnLimit(limit)
	}
}

func normalizeNamespace(name string) string {
	if name == "" {
		return "/"
	}
	if name[0] != '/' {
		return "/" + name
	}
	return name
}
