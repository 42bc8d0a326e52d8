package socketio

import (
	"log/slog"
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
	// Logger receives the package's logs. Default: slog.Default().
	Logger *slog.Logger
}

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
	if opts.Engine.Logger == nil {
		opts.Engine.Logger = opts.Logger
	}
	s := &Server{opts: opts, log: opts.Logger, namespaces: make(map[string]*Namespace)}
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
	for _, ns := range s.Namespaces() {
		_ = ns.adapter.Close()
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
