package socketio

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/group"
)

// Options configure a [Server]. The zero value of every field means its default.
type Options struct {
	// Engine configures the Engine.IO layer: heartbeat, payload limit, transports, CORS.
	Engine engineio.Options
	// Namespaces lists the namespaces clients may connect to, besides "/" and those made with
	// [Server.Of]; "*" allows any, each made on first use and removed once nothing holds it
	// (see [Namespace.Dynamic]).
	Namespaces []string
	// ConnectTimeout closes a connection that has joined no namespace by then. Default 45s.
	ConnectTimeout time.Duration
	// Cluster makes each namespace's cluster engine, which carries its broadcasts and socket
	// queries to the other nodes of a cluster (see socketio/redisadapter). Default nil: every
	// namespace is this node's alone.
	Cluster ClusterFactory
	// MaxNamespacesPerConnection bounds the namespaces one connection may join (or be joining)
	// at once; a CONNECT beyond it is answered CONNECT_ERROR "Too many namespaces on this
	// connection (limit N)". 0: unlimited.
	MaxNamespacesPerConnection int
	// MaxDynamicNamespaces bounds the dynamic namespaces (those "*" in Namespaces lets clients
	// make) that exist at once; a CONNECT that would make one more is answered CONNECT_ERROR
	// "Too many dynamic namespaces on this server (limit N)". Namespaces listed, made by
	// [Server.Of] or by [Server.Hold] are not refused. 0: unlimited (the default).
	MaxDynamicNamespaces int
	// MaxRoomsPerSocket bounds the rooms a socket may be in, its own id room not counted; a
	// join beyond it (from Socket.Join, an admission, or a SocketsJoin) leaves the
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
	// Recovery configures connection state recovery; off by default. A namespace without a
	// cluster engine keeps its sessions in memory; one whose engine is not a [SessionStore]
	// has no recovery.
	Recovery RecoveryOptions
	// OnLimit, when set, is called with one of the Limit* names each time a client runs into a
	// limit: the place to count them. It must not block. (The Engine.IO limits are reported
	// through Engine.OnLimit.)
	OnLimit func(limit string)
	// Logger receives the package's logs. Default: slog.Default().
	Logger *slog.Logger
}

// The limits a client can run into at the Socket.IO layer, as passed to Options.OnLimit. The
// names are the package's own; a program maps them to its settings' names if it labels
// metrics with those.
const (
	// LimitNamespaces: a connection asked for more than Options.MaxNamespacesPerConnection
	// namespaces; the CONNECT is refused.
	LimitNamespaces = "namespaces_per_connection"
	// LimitDynamicNamespaces: Options.MaxDynamicNamespaces namespaces made on demand exist;
	// the CONNECT that would make one more is refused.
	LimitDynamicNamespaces = "dynamic_namespaces"
	// LimitRooms: a socket in Options.MaxRoomsPerSocket rooms is refused one more.
	LimitRooms = "rooms_per_socket"
	// LimitAttachments: a packet announced more than Options.MaxAttachments binary
	// attachments; the connection is closed.
	LimitAttachments = "attachments"
	// LimitEventRate: a socket sent events faster than Options.EventsPerSecond allows; the
	// event is dropped.
	LimitEventRate = "event_rate"
)

// ErrRateLimited is the {"error":...} text an event dropped by EventsPerSecond is acked with.
const ErrRateLimited = "rate limited"

// Server is a Socket.IO v5 server. It is an http.Handler for the Socket.IO path.
type Server struct {
	opts Options
	eio  *engineio.Server
	log  *slog.Logger

	// wildcard is true when Options.Namespaces holds "*".
	wildcard bool

	mu          sync.RWMutex
	namespaces  map[string]*Namespace
	dynamic     int // how many of namespaces are dynamic
	onNamespace []func(*Namespace)
	closed      bool

	// goroutines are the authorizers and the recovery sweeper, which Close waits for.
	goroutines group.Group

	// pace tells bursts of broadcasts from broadcasts apart (see broadcastPace).
	pace broadcastPace

	// stopSweep ends the recovery sweeper.
	stopSweep chan struct{}
	stopOnce  sync.Once
}

// NewServer returns a server with opts. Namespace "/" always exists.
func NewServer(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
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
	s := &Server{opts: opts, log: opts.Logger, namespaces: make(map[string]*Namespace),
		wildcard: slices.Contains(opts.Namespaces, "*")}
	s.pace.base = time.Now()
	if w := opts.Recovery.MaxDisconnection; w > 0 {
		// One ticker for every namespace's store; an expired session found before a sweep is
		// refused all the same.
		s.stopSweep = make(chan struct{})
		s.goroutines.Go(func() {
			s.runSweeper(max(min(w/2, 30*time.Second), 10*time.Millisecond), s.stopSweep)
		})
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
// making it if it does not exist yet. A namespace returned by Of is never removed, even one
// that a client made dynamic: the caller may have set handlers on it.
func (s *Server) Of(name string) *Namespace {
	name = normalizeNamespace(name)
	s.mu.RLock()
	ns := s.namespaces[name]
	s.mu.RUnlock()
	if ns != nil && !ns.dynamic.Load() {
		return ns
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns = s.namespaces[name]; ns != nil {
		if ns.dynamic.Load() {
			ns.dynamic.Store(false)
			s.dynamic--
		}
		return ns
	}
	return s.makeLocked(name, false)
}

// makeLocked makes namespace name, with s.mu held. The hooks run before the namespace can be
// returned to anyone else: a client connecting to a dynamic namespace finds its handlers set.
func (s *Server) makeLocked(name string, dynamic bool) *Namespace {
	ns := newNamespace(s, name)
	ns.dynamic.Store(dynamic)
	if dynamic {
		s.dynamic++
	}
	s.namespaces[name] = ns
	for _, fn := range s.onNamespace {
		fn(ns)
	}
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

// Lookup returns the namespace called name if it exists now, and nil otherwise. Unlike Of
// and Hold, it never makes one.
func (s *Server) Lookup(name string) *Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.namespaces[normalizeNamespace(name)]
}

// Allows reports whether clients may connect to the namespace called name: it exists, or
// the Namespaces option holds "*".
func (s *Server) Allows(name string) bool {
	return s.wildcard || s.Lookup(name) != nil
}

// Hold returns the namespace called name, making it if it does not exist and the Namespaces
// option holds "*", and keeps it from being removed until release is called (once; later
// calls do nothing). It returns nil, and a release that does nothing, when clients may not
// connect to name. The MaxDynamicNamespaces limit does not refuse a Hold: it is for the
// app's own calls (siobridge's REST API holds the namespace it acts on for the length of a
// call), not for clients.
func (s *Server) Hold(name string) (ns *Namespace, release func()) {
	ns, err := s.acquire(normalizeNamespace(name), false)
	if err != nil {
		return nil, func() {}
	}
	var once sync.Once
	return ns, func() { once.Do(func() { s.release(ns) }) }
}

// Errors of acquire.
var (
	errUnknownNamespace   = errors.New("socketio: unknown namespace")
	errTooManyDynamic     = errors.New("socketio: too many dynamic namespaces")
	errServerShuttingDown = errors.New("socketio: server shutting down")
)

// acquire returns the namespace called name with one more hold on it, making it if "*"
// allows it; capped applies MaxDynamicNamespaces. Every acquire is matched by one release:
// a CONNECT's hold goes to its socket when admitted, and is released when the socket leaves.
func (s *Server) acquire(name string, capped bool) (*Namespace, error) {
	// Under the read lock, so that removeIdle, which checks the holds under the write lock,
	// never removes a namespace that someone has just found.
	s.mu.RLock()
	ns := s.namespaces[name]
	if ns != nil {
		ns.holds.Add(1)
	}
	s.mu.RUnlock()
	if ns != nil {
		return ns, nil
	}
	if !s.wildcard {
		return nil, errUnknownNamespace
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns = s.namespaces[name]; ns != nil {
		ns.holds.Add(1)
		return ns, nil
	}
	if s.closed {
		// Close closes the engines of the namespaces it finds; none may come after.
		return nil, errServerShuttingDown
	}
	if limit := s.opts.MaxDynamicNamespaces; capped && limit > 0 && s.dynamic >= limit {
		return nil, errTooManyDynamic
	}
	ns = s.makeLocked(name, true)
	ns.holds.Add(1)
	return ns, nil
}

// release ends one hold on ns; a dynamic namespace that nothing holds any more is removed.
func (s *Server) release(ns *Namespace) {
	if ns.holds.Add(-1) == 0 && ns.dynamic.Load() {
		s.removeIdle(ns)
	}
}

// removeIdle removes ns and closes its cluster engine if it is dynamic, nothing holds it and
// its recovery store keeps no session (the sweeper calls it again once they have expired).
func (s *Server) removeIdle(ns *Namespace) {
	s.mu.Lock()
	if s.closed || s.namespaces[ns.name] != ns || !ns.dynamic.Load() || ns.holds.Load() != 0 ||
		(ns.store != nil && ns.store.Sessions() > 0) {
		s.mu.Unlock()
		return
	}
	delete(s.namespaces, ns.name)
	s.dynamic--
	s.mu.Unlock()
	s.log.Debug("socketio: dynamic namespace removed: nothing holds it", "namespace", ns.name)
	if err := ns.closeCluster(); err != nil {
		s.log.Warn("socketio: closing the cluster engine of a removed namespace", "namespace", ns.name, "err", err)
	}
}

// Close disconnects every client with "server shutting down", closes the cluster engines and
// waits for the goroutines the server started.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.eio.Close() // flushes the writers a burst deferred
	s.pace.mu.Lock()
	if s.pace.flush != nil {
		s.pace.flush.Stop()
	}
	s.pace.mu.Unlock()
	if s.stopSweep != nil {
		s.stopOnce.Do(func() { close(s.stopSweep) })
	}
	s.goroutines.Wait()
	for _, ns := range s.Namespaces() {
		_ = ns.closeCluster()
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
