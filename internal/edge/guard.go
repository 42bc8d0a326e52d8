package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a [Guard]. The zero value of every field means its default.
type Options struct {
	// MaxHeaderBytes bounds a request's header, its request line included; a larger one is
	// answered 431. Set the http.Server's MaxHeaderBytes to the same (see Guard.Server).
	// Default 16384.
	MaxHeaderBytes int
	// BodyTimeout cuts a request body that delivers no byte for this long: the handler's
	// read fails with ErrBodyTimeout and the connection is closed. Default 30s; negative: none.
	BodyTimeout time.Duration
	// MaxConns bounds the open connections of the listener; one beyond it is answered 503
	// and closed as it is accepted. 0: unlimited.
	MaxConns int
	// MaxConnsPerAddr bounds the open connections of one client address (an IPv6 client's
	// /64) the same way. Addresses in TrustedProxies are not bounded. 0: unlimited.
	MaxConnsPerAddr int
	// TrustedProxies are the networks of reverse proxies in front of the listener, which
	// carry many clients' connections.
	TrustedProxies []netip.Prefix
	// OnRefuse, when set, is called with the limit's name each time a request or a
	// connection is refused: "request_framing", "max_header_bytes", "body_timeout",
	// "max_tcp_connections", "max_tcp_connections_per_ip". It must not block.
	OnRefuse func(limit string)
	// Logger receives a debug line for each refusal. Default: slog.Default().
	Logger *slog.Logger
}

// The names passed to OnRefuse.
const (
	LimitFraming        = "request_framing"
	LimitHeaderBytes    = "max_header_bytes"
	LimitBodyTimeout    = "body_timeout"
	LimitConns          = "max_tcp_connections"
	LimitConnsPerAddr   = "max_tcp_connections_per_ip"
	defaultHeaderBytes  = 16 << 10
	defaultBodyTimeout  = 30 * time.Second
	refusedConnResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)

// ErrBodyTimeout is the error of a request body read that BodyTimeout cut.
var ErrBodyTimeout = errors.New("edge: the request body delivered nothing within body_timeout")

// Guard guards one public listener and the http.Server serving it: Listener wraps the
// listener, Server sets up the server, and the Handler it installs refuses what the
// connections' watch found.
type Guard struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	conns   int
	perAddr map[netip.Addr]int
}

// New returns a guard with opts.
func New(opts Options) *Guard {
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = defaultHeaderBytes
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = defaultBodyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Guard{opts: opts, log: opts.Logger, perAddr: make(map[netip.Addr]int)}
}

// Server sets srv up to serve guarded connections: its handler is wrapped by Handler, its
// ConnContext tells the handler each request's connection, and its MaxHeaderBytes is the
// guard's (net/http answers 431 to a header it cannot finish reading within it).
func (g *Guard) Server(srv *http.Server) {
	srv.Handler = g.Handler(srv.Handler)
	next := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if next != nil {
			ctx = next(ctx, c)
		}
		if w := watchOf(c); w != nil {
			ctx = context.WithValue(ctx, watchKey{}, w)
		}
		return ctx
	}
	srv.MaxHeaderBytes = g.opts.MaxHeaderBytes
}

type watchKey struct{}

// Listener returns ln with its connections guarded and counted. A connection beyond
// MaxConns or MaxConnsPerAddr is answered 503 and closed in Accept, on the server's accepting
// goroutine: it costs no goroutine of its own.
func (g *Guard) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, g: g} }

type listener struct {
	net.Listener
	g *Guard
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if wrapped := l.g.admit(c); wrapped != nil {
			return wrapped, nil
		}
	}
}

// admit counts c and returns it guarded, or refuses it and returns nil.
func (g *Guard) admit(c net.Conn) net.Conn {
	key, byAddr := addrKey(c.RemoteAddr()), false
	if key.IsValid() && g.opts.MaxConnsPerAddr > 0 && !g.trusted(key) {
		key, byAddr = addrPrefixKey(key), true
	}
	limit := ""
	g.mu.Lock()
	switch {
	case g.opts.MaxConns > 0 && g.conns >= g.opts.MaxConns:
		limit = LimitConns
	case byAddr && g.perAddr[key] >= g.opts.MaxConnsPerAddr:
		limit = LimitConnsPerAddr
	default:
		g.conns++
		if byAddr {
			g.perAddr[key]++
		}
	}
	g.mu.Unlock()
	if limit != "" {
		g.refuseConn(c, limit)
		return nil
	}
	var w *watch
	var guarded net.Conn
	if tc, ok := c.(*net.TCPConn); ok {
		gc := &Conn{TCPConn: tc}
		w, guarded = &gc.w, gc
	} else {
		oc := &otherConn{Conn: c}
		w, guarded = &oc.w, oc
	}
	w.g, w.counted, w.framer = g, true, newFramer(g.opts.MaxHeaderBytes)
	if byAddr {
		w.key = key
	}
	return guarded
}

func (g *Guard) release(key netip.Addr) {
	g.mu.Lock()
	g.conns--
	if key.IsValid() {
		if g.perAddr[key]--; g.perAddr[key] <= 0 {
			delete(g.perAddr, key)
		}
	}
	g.mu.Unlock()
}

// Open returns the connections open now.
func (g *Guard) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns
}

// refuseConn answers a connection over a limit with 503 and closes it. The socket is new, so
// the short answer fits in its send buffer: the write does not wait.
func (g *Guard) refuseConn(c net.Conn, limit string) {
	g.count(limit)
	msg := "too many connections (" + limit + ")\n"
	g.log.Debug("edge: connection refused", "limit", limit, "addr", c.RemoteAddr().String())
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	_, _ = fmt.Fprintf(c, refusedConnResponse, len(msg), msg)
	_ = c.Close()
}

func (g *Guard) count(limit string) {
	if g.opts.OnRefuse != nil {
		g.opts.OnRefuse(limit)
	}
}

func (g *Guard) trusted(a netip.Addr) bool {
	for _, p := range g.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func addrKey(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// addrPrefixKey is an address's key in the per-address count: an IPv6 client's /64, which is
// what one client usually has.
func addrPrefixKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Handler refuses what the watch of the request's connection found (see framer), a GET or
// HEAD with a body, and CONNECT, each with a plain-text status and the connection closed;
// it bounds the request body's reads by BodyTimeout; and it closes the connection after a
// request to upgrade that is not answered 101 (what follows it was not watched). Everything
// else goes to next.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wt, ok := r.Context().Value(watchKey{}).(*watch); ok {
			if v := wt.verdict.Load(); v != nil {
				g.answer(w, *v) // counted and logged by the watch
				return
			}
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
			g.refuse(w, r, verdictBodyless)
			return
		}
		if r.Method == http.MethodConnect {
			g.refuse(w, r, Verdict{http.StatusMethodNotAllowed, "CONNECT is not served", LimitFraming})
			return
		}
		if len(r.Header["Upgrade"]) > 0 {
			w = &upgradeWriter{ResponseWriter: w}
		}
		if r.Body != nil && r.Body != http.NoBody && g.opts.BodyTimeout > 0 {
			r.Body = &timedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), g: g, r: r}
		}
		next.ServeHTTP(w, r)
	})
}

// refuse counts, logs and answers a refused request.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, v Verdict) {
	g.count(v.Limit)
	g.log.Debug("edge: request refused", "status", v.Status, "reason", v.Reason,
		"method", r.Method, "path", r.URL.Path, "addr", r.RemoteAddr)
	g.answer(w, v)
}

// answer answers a refused request and closes its connection.
func (g *Guard) answer(w http.ResponseWriter, v Verdict) {
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(v.Reason)+1))
	w.WriteHeader(v.Status)
	_, _ = io.WriteString(w, v.Reason+"\n")
}

// upgradeWriter closes the connection after a request to upgrade that is answered with
// anything but 101.
type upgradeWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *upgradeWriter) WriteHeader(code int) {
	if !w.wrote && code != http.StatusSwitchingProtocols {
		w.Header().Set("Connection", "close")
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Hijack is gorilla/websocket's way to take the connection (it asks for http.Hijacker).
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// timedBody bounds each read of a request body by BodyTimeout, with the connection's read
// deadline; the deadline is cleared at the body's end (net/http then reads in the background
// to see the client go, and must not time out).
type timedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	g    *Guard
	r    *http.Request
	done bool
	// Read by BodyCut, on another goroutine than Read: whether the body was cut, whether a
	// read is waiting, and until when (Unix nanoseconds).
	cut      atomic.Bool
	reading  atomic.Bool
	deadline atomic.Int64
}

// BodyCut reports whether r's body was cut by BodyTimeout, r being the request Handler gave
// (not a clone whose body was wrapped since). A handler whose read of the body failed may
// see another error than ErrBodyTimeout (net/http cancels the request's context when its
// connection's read fails): this tells it why.
func BodyCut(r *http.Request) bool {
	b, ok := r.Body.(*timedBody)
	// A read still waiting past its deadline is being cut: the handler may learn of the
	// failure (a cancelled context) before the read returns.
	return ok && (b.cut.Load() || b.reading.Load() && time.Now().UnixNano() >= b.deadline.Load())
}

func (b *timedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	deadline := time.Now().Add(b.g.opts.BodyTimeout)
	b.deadline.Store(deadline.UnixNano())
	b.reading.Store(true)
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.ReadCloser.Read(p)
	defer b.reading.Store(false) // after cut is set: BodyCut sees one or the other
	switch {
	case err == io.EOF:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && isTimeout(err):
		b.done = true
		b.cut.Store(true)
		b.g.count(LimitBodyTimeout)
		b.g.log.Debug("edge: request body cut", "after", b.g.opts.BodyTimeout.String(),
			"method", b.r.Method, "path", b.r.URL.Path, "addr", b.r.RemoteAddr)
		return n, fmt.Errorf("%w (%v)", ErrBodyTimeout, b.g.opts.BodyTimeout)
	}
	return n, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
