package engineio

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/engineio/internal/heldhttp"
	"github.com/siobridge/siobridge/internal/group"
)

// Transport names, as in the transport query parameter.
const (
	TransportPolling   = "polling"
	TransportWebSocket = "websocket"
)

// Options configure a [Server]. The zero value of every field means its default.
type Options struct {
	// PingInterval is how often the server pings each session. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the session closes with "ping timeout".
	// Default 20s.
	PingTimeout time.Duration
	// UpgradeTimeout bounds the polling-to-WebSocket upgrade: a probe WebSocket that has not sent
	// the upgrade packet by then is closed, and the session stays on polling. Default 10s.
	UpgradeTimeout time.Duration
	// MaxPayload is the largest POST body or WebSocket message a client may send, in bytes.
	// Larger ones close the session (a POST gets 413 and none of it is delivered). Default 1e6.
	MaxPayload int64
	// Transports lists the allowed transports, of TransportPolling and TransportWebSocket.
	// Default both.
	Transports []string
	// MaxQueuedMessages bounds each session's send queue, in messages. A session whose client
	// falls this far behind is closed with ErrSendQueueFull: a slow reader never grows memory
	// without bound, and nothing queued is silently dropped (volatile sends aside). Default 4096.
	MaxQueuedMessages int
	// WriteTimeout bounds one write to a client (a WebSocket frame or a polling response).
	// Default 10s.
	WriteTimeout time.Duration
	// CORSOrigins lists the origins, other than the server's own, allowed to reach the polling
	// transport from a browser and to open WebSockets; "*" allows any. A request whose Origin
	// is neither listed nor the server's own (its Host, or a trusted proxy's X-Forwarded-Host)
	// is refused with 403 and the Engine.IO error code 4 ("Forbidden"); requests without
	// Origin are not browsers', and are served.
	// Empty: only pages of the server's own origin (unlike Node's engine.io, which lets any
	// page open a WebSocket), and no CORS headers are sent.
	CORSOrigins []string
	// CORSCredentials sends Access-Control-Allow-Credentials: true to allowed origins.
	CORSCredentials bool
	// AllowRequest, when set, is asked about each handshake; a non-nil error refuses it with
	// 403 Forbidden (code 4) and the error's text as the message.
	AllowRequest func(r *http.Request) error
	// MaxSessions bounds the open sessions: a handshake beyond it is refused with 403 Forbidden
	// (code 4) and a message naming the limit. 0: unlimited.
	MaxSessions int
	// MaxSessionsPerAddr bounds the open sessions of one client address (an IPv6 client's /64),
	// as ClientAddr tells it; beyond it a handshake is refused like MaxSessions. 0: unlimited.
	MaxSessionsPerAddr int
	// HandshakeRate bounds the handshakes of one client address, per second, with bursts of
	// HandshakeBurst; one beyond it is refused like MaxSessions. 0: unlimited.
	HandshakeRate float64
	// HandshakeBurst is the handshakes one address may make at once before HandshakeRate
	// applies. Default: HandshakeRate rounded up, at least 1.
	HandshakeBurst int
	// TrustedProxies lists the networks of reverse proxies whose X-Forwarded-For is believed
	// (see ClientAddr). Empty: the client's address is the connection's.
	TrustedProxies []netip.Prefix
	// OnLimit, when set, is called with one of the Limit* names each time a handshake is
	// refused or a session closed by a limit: the place to count them. It must not block.
	OnLimit func(limit string)
	// Logger receives the package's debug and error logs. Default: slog.Default().
	Logger *slog.Logger
	// DisableWebSocketPoller gives every WebSocket a reader goroutine of its own, as on
	// systems other than Linux. On Linux, by default, one goroutine of the server waits on
	// epoll for all of its WebSockets, and a connection gets a goroutine only while it has
	// something to read: an idle WebSocket holds none.
	DisableWebSocketPoller bool
	// PollingHandoff, when set, holds long-polling connections without a goroutine each
	// (Linux, with the WebSocket poller): a GET with nothing to answer yet takes its
	// connection from net/http and parks, and the connection's later polls of PollingPath are
	// read by the poller and served as ServeHTTP serves them, without net/http. Any other
	// request on it (a handshake, a WebSocket, anything for another handler) is given to
	// PollingHandoff, with the bytes read of it, to be served as a new connection: pass a
	// HandoffListener's Handoff, and have the http.Server that serves the real listener serve
	// it too. nil: every poll waits in its net/http handler.
	PollingHandoff func(net.Conn)
	// PollingPath is the exact path of this server's requests (such as "/socket.io/"), which
	// PollingHandoff needs to tell its polls from other requests.
	PollingPath string
	// MaxHeaderBytes is the largest request header, request line included, in bytes, that a
	// connection held for PollingHandoff reads itself; a larger one goes to net/http, whose
	// own limit then applies: give both the same (siobridge gives [server] max_header_bytes).
	// Behind a parked GET it is also all a client may send. Default, and at most, 8 KiB.
	MaxHeaderBytes int
	// PollingIdleTimeout closes a connection held for PollingHandoff that carries no request
	// for this long, as net/http's IdleTimeout does (siobridge gives its public server's).
	// Default 2m.
	PollingIdleTimeout time.Duration
	// PollingHeaderTimeout closes a held connection that has begun a request and not finished
	// its header within this long, as net/http's ReadHeaderTimeout does (siobridge gives its
	// public server's). Default 10s.
	PollingHeaderTimeout time.Duration
	// PollingBodyTimeout closes a held connection whose request body delivers no byte for
	// this long (siobridge gives [server] body_timeout). Default 30s.
	//
	// The three polling timeouts are kept by one sweep of the held connections, every half
	// the shorter of PollingHeaderTimeout and PollingBodyTimeout (from 10ms to 5s): a
	// connection is closed up to that much after its timeout.
	PollingBodyTimeout time.Duration
	// AllowEIO3 serves Engine.IO v3 clients (socket.io-client 2.x), as Node's allowEIO3 does:
	// a request whose EIO is not "4", or that has none, is then v3 (Session.Protocol), and
	// JSONP polling (a j query parameter) is served. Off (the default), such a request is
	// refused with 400 and the error code 5 ("Unsupported protocol version"), and a JSONP
	// request of v4 with 400 (Node serves those; no v4 client sends one). A JSONP script
	// carries no Origin: CORSOrigins decides on the page's Referer instead (see
	// jsonpPageAllowed).
	AllowEIO3 bool
}

func (o *Options) setDefaults() {
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = 10 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1_000_000
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{TransportPolling, TransportWebSocket}
	}
	if o.MaxQueuedMessages <= 0 {
		o.MaxQueuedMessages = 4096
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.HandshakeRate > 0 && o.HandshakeBurst <= 0 {
		o.HandshakeBurst = max(1, int(math.Ceil(o.HandshakeRate)))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxHeaderBytes <= 0 || o.MaxHeaderBytes > heldhttp.MaxHeaderBytes {
		o.MaxHeaderBytes = heldhttp.MaxHeaderBytes
	}
	if o.PollingIdleTimeout <= 0 {
		o.PollingIdleTimeout = 2 * time.Minute
	}
	if o.PollingHeaderTimeout <= 0 {
		o.PollingHeaderTimeout = 10 * time.Second
	}
	if o.PollingBodyTimeout <= 0 {
		o.PollingBodyTimeout = 30 * time.Second
	}
}

// SessionHandler receives one session's inbound messages and its end. The session calls
// OnMessage from its reader, one call at a time and in the client's order; a handler must not
// block there (hand slow work to another goroutine), or the session stops reading, heartbeats
// included; with the poller, a blocked handler also holds one of the readers that all of the
// server's WebSockets share. OnClose is called exactly once, possibly while an OnMessage is
// still running.
type SessionHandler interface {
	// OnMessage receives one message; data belongs to the handler.
	OnMessage(data []byte, binary bool)
	// OnClose tells why the session ended: one of the Reason* constants, and the error behind
	// it, if any.
	OnClose(reason string, err error)
}

// SessionOpener is a SessionHandler that acts as soon as its session is open: OnOpen is called
// once, after the session is registered and its heartbeat started, before its first answer
// is written. What it sends is queued after the open packet (a polling handshake carries it);
// it may close the session (a WebSocket handshake's connection is then closed at once).
// socketio's connections of 2.x clients, which are in "/" without asking, are such handlers.
type SessionOpener interface {
	SessionHandler
	OnOpen()
}

// Server serves Engine.IO v4 sessions over HTTP, and v3 ones with Options.AllowEIO3. Mount it on the Socket.IO path (such as
// "/socket.io/"); every request under it is one of the protocol's.
type Server struct {
	opts      Options
	onSession func(*Session) SessionHandler
	upgrader  websocket.Upgrader
	log       *slog.Logger

	// pingMsg, pongMsg (v3), noopMsg and closeMsg are queued on many sessions, so they are
	// built once.
	pingMsg, pongMsg, noopMsg, closeMsg *Message

	mu       sync.RWMutex
	sessions map[string]*Session
	closed   bool
	// count is the sessions open or being opened (a slot admit reserved); perAddr the same by
	// client address key, kept only with MaxSessionsPerAddr.
	count   int
	perAddr map[netip.Addr]int

	beats       *heartbeats       // every session's next ping or pong deadline, on one timer
	limiter     *handshakeLimiter // nil without HandshakeRate
	stopJanitor chan struct{}

	// goroutines counts the goroutines the server starts (WebSocket readers and writers, the
	// epoller and its readers, the janitor), for Close.
	goroutines group.Group
	// deferred holds the WebSocket writers that EnqueueBatched deferred (see Flush).
	deferred deferredWriters
	// epoll reads the WebSockets and the held connections; nil without it
	// (DisableWebSocketPoller, or not Linux).
	epoll *epoller
	// held are the long-polling connections taken from net/http (PollingHandoff).
	held heldSet
}

// NewServer returns a server with opts; onSession is called for every new session, before any
// of its messages, and returns the handler for it.
func NewServer(opts Options, onSession func(*Session) SessionHandler) *Server {
	opts.setDefaults()
	s := &Server{
		opts:      opts,
		onSession: onSession,
		log:       opts.Logger,
		sessions:  make(map[string]*Session),
		perAddr:   make(map[netip.Addr]int),
		pingMsg:   newPacket(packetPing, nil),
		pongMsg:   newPacket(packetPong, nil),
		noopMsg:   newPacket(packetNoop, nil),
		closeMsg:  newPacket(packetClose, nil),
		beats:     newHeartbeats(),
		held: heldSet{
			sweepEvery: sweepPeriod(&opts),
			limits:     heldhttp.Limits{Path: opts.PollingPath, MaxHeader: opts.MaxHeaderBytes, MaxBody: opts.MaxPayload},
			conns:      make(map[*heldConn]struct{}), stop: make(chan struct{}),
		},
	}
	s.upgrader = websocket.Upgrader{
		// A small read buffer: client messages are small, and a larger one is read straight
		// into the message. Writes borrow a buffer from the pool only while writing.
		ReadBufferSize:  256,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.websocketOriginAllowed,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, http.StatusText(status), http.StatusBadRequest)
		},
	}
	if !opts.DisableWebSocketPoller {
		s.epoll = newEpoller(&s.goroutines, s.log)
	}
	if opts.HandshakeRate > 0 {
		s.limiter = newHandshakeLimiter(opts.HandshakeRate, opts.HandshakeBurst)
		s.stopJanitor = make(chan struct{})
		s.goroutines.Go(func() { s.limiter.janitor(s.stopJanitor) })
	}
	return s
}

// Flush starts the WebSocket writers that EnqueueBatched deferred: each writes, in one system
// call, whatever its session's queue holds by the time it runs. A caller sending in bursts
// calls it when its burst pauses; the writers start by themselves at the latest maxDeferral
// after the first of them was deferred.
func (s *Server) Flush() {
	sessions := s.deferred.take()
	for i, sess := range sessions {
		sess.mu.Lock()
		start, conn := sess.deferred, sess.ws
		sess.deferred = false
		sess.mu.Unlock()
		if start {
			s.goroutines.Go(func() { sess.writeLoop(conn, nil) })
		}
		sessions[i] = nil
	}
	s.deferred.recycle(sessions)
}

// maxDeferral bounds how long EnqueueBatched defers a writer: what a burst of broadcasts that
// never pauses adds to the time its messages take, for writing each receiver several of them
// in one system call instead of one each.
const maxDeferral = 20 * time.Millisecond

// deferredWriters are the sessions whose writer EnqueueBatched deferred, until Flush or, at the
// latest, maxDeferral after the first of them (one timer for the server).
type deferredWriters struct {
	mu       sync.Mutex
	sessions []*Session
	spare    []*Session // a flushed array, reused
	timer    *time.Timer
	// max is maxDeferral, but for tests.
	max time.Duration
}

// add defers sess's writer, for Server.Flush to start; the caller has set sess.deferred,
// under sess.mu.
func (d *deferredWriters) add(sess *Session) {
	d.mu.Lock()
	if len(d.sessions) == 0 {
		wait := cmp.Or(d.max, maxDeferral)
		if d.timer == nil {
			d.timer = time.AfterFunc(wait, sess.srv.Flush) // the method value made once
		} else {
			d.timer.Reset(wait)
		}
	}
	d.sessions = append(d.sessions, sess)
	d.mu.Unlock()
}

// take returns the deferred sessions and forgets them.
func (d *deferredWriters) take() []*Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.sessions
	if len(out) == 0 {
		return nil
	}
	d.timer.Stop()
	d.sessions, d.spare = d.spare, nil
	return out
}

// recycle keeps a taken array, cleared, for the next burst.
func (d *deferredWriters) recycle(sessions []*Session) {
	if sessions == nil {
		return
	}
	d.mu.Lock()
	if d.spare == nil {
		d.spare = sessions[:0]
	}
	d.mu.Unlock()
}

// Options returns the options in force, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Len is the number of open sessions.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// Session returns the open session with the id, or nil.
func (s *Server) Session(id string) *Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[id]
}

// Close ends every session with "server shutting down", refuses new ones, and waits for the
// goroutines the server started to end.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed && s.stopJanitor != nil {
		close(s.stopJanitor)
	}
	s.closed = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.closeWith(ReasonServerShutdown, nil, true)
	}
	// Deferred writers flush the close packets queued above; none is deferred after, since
	// every session is closed.
	s.Flush()
	s.beats.stop()
	s.held.stopSweep()
	if s.epoll != nil {
		s.epoll.close()
	}
	s.goroutines.Wait()
	s.closeHeld()
}

// ServeHTTP answers one Engine.IO request: a handshake, a poll, a post, or a WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serveRequest(w, r, nil) }

// serveRequest answers one Engine.IO request that came through net/http (hc nil), or on the
// held connection hc (heldConn.serve), whose writer w is: a GET with nothing to answer then
// parks on hc instead of waiting.
func (s *Server) serveRequest(w http.ResponseWriter, r *http.Request, hc *heldConn) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
		// Its body would stay on the connection, to be read as the next request once the GET
		// is held (hijackPoll): refused, and the connection closed.
		w.Header().Set("Connection", "close")
		writeError(w, codeBadRequest, "a GET request may not have a body")
		return
	}
	s.setCORS(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// A browser sends Origin; one not in the list is refused on every transport, so that a
	// foreign page can neither open a session nor post into one. Requests without Origin
	// (non-browser clients) are not concerned.
	if !s.websocketOriginAllowed(r) {
		s.onLimit(LimitOrigin)
		writeError(w, codeForbidden, fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")))
		return
	}
	q := queryOf(r.URL.RawQuery)
	proto := 4
	if q.Get("EIO") != "4" {
		if !s.opts.AllowEIO3 {
			writeError(w, codeUnsupportedProtocol, "")
			return
		}
		proto = 3
	}
	var pf pollForm
	if j, ok := q.Lookup("j"); ok {
		if !s.opts.AllowEIO3 {
			// Only socket.io-client 2.x polls over JSONP; served to nobody else, its scripts
			// are no way around the Origin check.
			writeError(w, codeBadRequest, "JSONP polling is served only to Engine.IO v3 clients, which this server does not allow")
			return
		}
		if !validJSONPIndex(j) {
			writeError(w, codeBadRequest, "j must be 1 to 10 digits")
			return
		}
		if !s.jsonpPageAllowed(r) {
			s.onLimit(LimitOrigin)
			writeError(w, codeForbidden, "the page's origin is not allowed")
			return
		}
		pf.jsonp = j
	}
	pf.b64 = q.Get("b64") != ""
	transport := q.Get("transport")
	if !slices.Contains(s.opts.Transports, transport) {
		writeError(w, codeUnknownTransport, "")
		return
	}
	isUpgrade := websocket.IsWebSocketUpgrade(r)
	if transport == TransportWebSocket && !isUpgrade {
		writeError(w, codeBadRequest, "")
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		s.handshake(w, r, transport, hc, proto, pf)
		return
	}
	sess := s.Session(sid)
	if sess == nil {
		writeError(w, codeUnknownSID, "")
		return
	}
	if int(sess.protocol) != proto {
		// A client keeps its protocol for the session's life; a held connection is only ever
		// given a v4 session's polls (heldhttp).
		writeError(w, codeBadRequest, "EIO differs from the session's")
		return
	}
	if transport == TransportWebSocket {
		sess.serveUpgrade(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		sess.servePoll(w, r, hc, pf)
	case http.MethodPost:
		sess.servePost(w, r, pf)
	default:
		writeError(w, codeBadRequest, "")
	}
}

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, transport string, hc *heldConn, proto int, pf pollForm) {
	if r.Method != http.MethodGet {
		writeError(w, codeBadHandshakeMethod, "")
		return
	}
	if s.opts.AllowRequest != nil {
		if err := s.opts.AllowRequest(r); err != nil {
			writeError(w, codeForbidden, err.Error())
			return
		}
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		writeError(w, codeBadRequest, "Server shutting down")
		return
	}
	addr := ClientAddr(r, s.opts.TrustedProxies)
	key := addrKey(addr)
	if limit, msg := s.admit(key); limit != "" {
		s.onLimit(limit)
		s.log.Debug("engineio: handshake refused", "limit", limit, "addr", addr)
		writeError(w, codeForbidden, msg)
		return
	}

	var conn *websocket.Conn
	if transport == TransportWebSocket {
		var err error
		conn, err = s.upgrader.Upgrade(w, r, nil)
		if err != nil {
			s.mu.Lock()
			s.releaseLocked(key)
			s.mu.Unlock()
			return // the upgrader has answered
		}
	}
	sess := newSession(s, r, transport, proto)
	if addr.IsValid() {
		sess.handshake.Address = addressString(addr, r.RemoteAddr)
	}
	upgrades := []string{}
	if transport == TransportPolling && slices.Contains(s.opts.Transports, TransportWebSocket) {
		upgrades = append(upgrades, TransportWebSocket)
	}
	maxPayload := s.opts.MaxPayload // never 0 (setDefaults)
	if proto == 3 {
		maxPayload = 0 // v3's open packet has no maxPayload
	}
	open, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload,omitempty"`
	}{sess.id, upgrades, s.opts.PingInterval.Milliseconds(), s.opts.PingTimeout.Milliseconds(), maxPayload})
	// The open packet is first in the queue, before anything the handler may send.
	sess.queue = append(sess.queue, newPacket(packetOpen, open))

	sess.handler = s.onSession(sess)
	s.mu.Lock()
	if s.closed {
		s.releaseLocked(key)
		s.mu.Unlock()
		sess.closeWith(ReasonServerShutdown, nil, false)
		if conn != nil {
			conn.Close()
		} else {
			writeError(w, codeBadRequest, "Server shutting down")
		}
		return
	}
	s.sessions[sess.id] = sess
	s.mu.Unlock()

	sess.startHeartbeat()
	if o, ok := sess.handler.(SessionOpener); ok {
		o.OnOpen()
	}
	if conn != nil {
		sess.startWebSocket(conn)
		return
	}
	sess.servePoll(w, r, hc, pf)
}

// addressString is addr as a string: RemoteAddr's host when it is addr in the same form (the
// usual case, without a trusted proxy), which the session keeps anyway, so as not to keep a
// copy of it.
func addressString(addr netip.Addr, remoteAddr string) string {
	a := addr.String()
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil && host == a {
		return host
	}
	return a
}

// addrKey is what the per-address limits counted sess under at its handshake, found again
// from its Address (which is the address's String, or empty for none) rather than kept in
// every session for its end.
func (sess *Session) addrKey() netip.Addr {
	a, _ := netip.ParseAddr(sess.handshake.Address)
	return addrKey(a)
}

func (s *Server) remove(sess *Session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		s.releaseLocked(sess.addrKey())
	}
	s.mu.Unlock()
}

// originAllowed reports whether origin is in the CORS list.
func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.opts.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// websocketOriginAllowed reports whether r's Origin, if any, is allowed (gorilla's CheckOrigin,
// and the check of every request): the server's own origin (a page it serves, as siobridge
// does through its reverse proxy) and the listed ones. A page of another origin is refused
// unless listed: otherwise any web site could open a WebSocket, or post into a session, with
// its visitor's cookies (cross-site WebSocket hijacking).
func (s *Server) websocketOriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || s.sameOrigin(origin, r) || s.originAllowed(origin)
}

// jsonpPageAllowed applies the Origin check to a JSONP request, which a browser sends without
// Origin when it loads a script: any page may load one, with its visitor's cookies, and read
// what the script hands to its callback. The page is known by what the browser says of it:
// Sec-Fetch-Site "same-origin" or "none" (typed in the address bar) is allowed; otherwise the
// origin of the Referer must be allowed as an Origin would be. A browser request (one with
// Sec-Fetch-Site) whose page hides its Referer is refused unless CORSOrigins has "*"; a
// request with neither header is no browser's, carries no visitor's cookies, and is served.
func (s *Server) jsonpPageAllowed(r *http.Request) bool {
	if r.Header.Get("Origin") != "" {
		return true // a POST: websocketOriginAllowed has decided
	}
	site := r.Header.Get("Sec-Fetch-Site")
	if site == "same-origin" || site == "none" || slices.Contains(s.opts.CORSOrigins, "*") {
		return true
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return site == ""
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return false
	}
	origin := u.Scheme + "://" + u.Host
	return s.sameOrigin(origin, r) || s.originAllowed(origin)
}

// sameOrigin reports whether origin is the one r was sent to: its host and port are r's Host,
// or, from a trusted proxy, its X-Forwarded-Host. A scheme's default port may be left out on
// either side.
func (s *Server) sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	want := withoutDefaultPort(u.Host, u.Scheme)
	if strings.EqualFold(want, withoutDefaultPort(r.Host, u.Scheme)) {
		return true
	}
	if fwd := r.Header.Get("X-Forwarded-Host"); fwd != "" && len(s.opts.TrustedProxies) > 0 {
		host := r.RemoteAddr
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if a, err := netip.ParseAddr(host); err == nil && isTrusted(a.Unmap(), s.opts.TrustedProxies) {
			first, _, _ := strings.Cut(fwd, ",")
			return strings.EqualFold(want, withoutDefaultPort(strings.TrimSpace(first), u.Scheme))
		}
	}
	return false
}

// withoutDefaultPort drops ":80" from an http host, ":443" from an https one.
func withoutDefaultPort(host, scheme string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

func (s *Server) setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.opts.CORSOrigins) == 0 {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if !s.originAllowed(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if s.opts.CORSCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
	}
}

// query is a request's query, read without building url.Values when it needs no unescaping
// (as every Engine.IO client's does): Get returns the first value of a key, as
// url.Values.Get.
type query struct {
	raw    string
	parsed url.Values // when raw has escapes or semicolons: parsed as url.ParseQuery does
}

func queryOf(raw string) query {
	if strings.ContainsAny(raw, "%+;") {
		v, _ := url.ParseQuery(raw) // what parses is kept, as net/http's URL.Query does
		return query{parsed: v}
	}
	return query{raw: raw}
}

func (q query) Get(key string) string {
	v, _ := q.Lookup(key)
	return v
}

// Lookup returns the first value of key, and whether the query has the key at all.
func (q query) Lookup(key string) (string, bool) {
	if q.parsed != nil {
		if vs, ok := q.parsed[key]; ok && len(vs) > 0 {
			return vs[0], true
		}
		return "", false
	}
	for rest := q.raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if k, v, _ := strings.Cut(pair, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// newID returns a random 20-character URL-safe id.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewID returns a random 20-character URL-safe identifier, as used for session ids.
func NewID() string { return newID() }
