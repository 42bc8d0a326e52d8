package engineio

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The limits a handshake or a session can run into, as passed to Options.OnLimit. The names
// are the package's own; a program maps them to its settings' names if it labels metrics
// with those.
const (
	// LimitSessions: Options.MaxSessions open sessions; the handshake is refused.
	LimitSessions = "sessions"
	// LimitSessionsPerAddr: Options.MaxSessionsPerAddr sessions from the client's address;
	// the handshake is refused.
	LimitSessionsPerAddr = "sessions_per_addr"
	// LimitHandshakeRate: the client's address handshakes faster than Options.HandshakeRate
	// allows; the handshake is refused.
	LimitHandshakeRate = "handshake_rate"
	// LimitSendQueue: a session's send queue reached Options.MaxQueuedMessages; the session is
	// closed with ErrSendQueueFull.
	LimitSendQueue = "send_queue"
	// LimitPayload: a client sent more than Options.MaxPayload at once; the session is closed
	// with ErrPayloadTooLarge.
	LimitPayload = "payload"
	// LimitOrigin: a request came from a browser page whose origin is not in
	// Options.CORSOrigins; it is refused with 403 and the Engine.IO error code 4
	// ("Forbidden").
	LimitOrigin = "origin"
)

// maxTrackedAddrs bounds the handshake rate limiter's table of client addresses. An address
// leaves the table once its bucket is full again (it has been quiet for Burst/Rate), so only
// the addresses handshaking right now count against it. When it is full a new address is
// refused: memory stays bounded even under a flood from many addresses.
const maxTrackedAddrs = 100_000

// pruneInterval is how often the janitor drops quiet addresses from the rate limiter.
const pruneInterval = 10 * time.Second

// ClientAddr returns the address of the client that made r: the host of r.RemoteAddr, or,
// when that is one of the trusted proxies, the right-most address of X-Forwarded-For that is
// not itself a trusted proxy (the one the nearest trusted proxy saw). An unparsable
// X-Forwarded-For is ignored and the proxy's own address returned. The result is the zero
// Addr only when RemoteAddr is not an IP address (a test's fake request).
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := addr
	for i := len(hops) - 1; i >= 0; i-- {
		items := strings.Split(hops[i], ",")
		for j := len(items) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(items[j]))
			if err != nil {
				return client // a garbled hop: trust nothing left of it
			}
			client = hop.Unmap()
			if !isTrusted(client, trusted) {
				return client
			}
		}
	}
	return client
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrKey is what the per-address limits count by: the address itself for IPv4, its /64 for
// IPv6, since one IPv6 client typically holds a whole /64.
func addrKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// handshakeLimiter is the per-address token bucket of handshakes: one rate.Limiter per
// address handshaking lately, in a bounded table pruned by one janitor goroutine.
type handshakeLimiter struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	addrs map[netip.Addr]*rate.Limiter
}

func newHandshakeLimiter(perSecond float64, burst int) *handshakeLimiter {
	return &handshakeLimiter{limit: rate.Limit(perSecond), burst: burst, addrs: make(map[netip.Addr]*rate.Limiter)}
}

// allow takes a token for key; false when the bucket is empty or the table is full.
func (l *handshakeLimiter) allow(key netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.addrs[key]
	if lim == nil {
		if len(l.addrs) >= maxTrackedAddrs {
			return false
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.addrs[key] = lim
	}
	return lim.AllowN(now, 1)
}

// prune drops the addresses whose bucket has refilled: forgetting them changes nothing.
func (l *handshakeLimiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, lim := range l.addrs {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.addrs, k)
		}
	}
}

func (l *handshakeLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}

// janitor prunes the limiter until stop is closed.
func (l *handshakeLimiter) janitor(stop <-chan struct{}) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			l.prune(now)
		}
	}
}

// admit applies the handshake limits to a new session from key: the rate, then the session
// counts, reserving a slot on success. It returns the limit hit, "" when admitted; a
// reservation is given back with release, or by the session's removal.
func (s *Server) admit(key netip.Addr) (limit, message string) {
	if s.limiter != nil && !s.limiter.allow(key, time.Now()) {
		return LimitHandshakeRate, fmt.Sprintf("Too many connection attempts from this address (limit %g per second)", s.opts.HandshakeRate)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxSessions > 0 && s.count >= s.opts.MaxSessions {
		return LimitSessions, fmt.Sprintf("Server full (limit %d connections)", s.opts.MaxSessions)
	}
	if s.opts.MaxSessionsPerAddr > 0 && s.perAddr[key] >= s.opts.MaxSessionsPerAddr {
		return LimitSessionsPerAddr, fmt.Sprintf("Too many connections from this address (limit %d)", s.opts.MaxSessionsPerAddr)
	}
	s.count++
	if s.opts.MaxSessionsPerAddr > 0 {
		s.perAddr[key]++
	}
	return "", ""
}

// release gives back a slot reserved by admit; the caller holds s.mu.
func (s *Server) releaseLocked(key netip.Addr) {
	s.count--
	if s.opts.MaxSessionsPerAddr > 0 {
		if n := s.perAddr[key] - 1; n > 0 {
			s.perAddr[key] = n
		} else {
			delete(s.perAddr, key)
		}
	}
}

func (s *Server) onLimit(limit string) {
	if s.opts.OnLimit != nil {
		s.opts.OnLimit(limit)
	}
}
