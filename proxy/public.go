package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/siobridge/siobridge/internal/edge"

	"github.com/siobridge/siobridge/internal/httpstat"
)

// PublicOptions configure the public handler made by [NewPublic].
type PublicOptions struct {
	// SocketIO serves the Socket.IO endpoint: every request under Path but the client bundle's
	// files. Required; normally the *socketio.Server.
	SocketIO http.Handler
	// Path is the Socket.IO path, such as "/socket.io/"; it must start and end with "/".
	Path string
	// Bundle holds socket.io-client's dist files (see [ClientBundle]), served under Path as
	// Node's socket.io serves them. Nil, or a file missing from it: those paths answer 404 with
	// a message saying how to build the bundle.
	Bundle fs.FS
	// Upstream is the app every other request is proxied to: an absolute http or https URL,
	// whose path, if any, prefixes the request's. Nil: every other request gets 404.
	Upstream *url.URL
	// Logger receives proxy errors at warn level. Default: slog.Default().
	Logger *slog.Logger
	// Metrics counts proxied requests and proxy errors. Nil: nothing is counted.
	Metrics *Metrics
}

// Proxy transport limits. There is no response header timeout: the app may hold a request open
// (long polling, server-sent events) as long as it likes.
const (
	upstreamDialTimeout = 5 * time.Second
	upstreamTLSTimeout  = 10 * time.Second
	upstreamIdleTimeout = 90 * time.Second
	upstreamIdleConns   = 64
)

// public routes the public listener's requests: the bundle, the Socket.IO endpoint, the app.
type public struct {
	path     string
	sio      http.Handler
	bundle   map[string]*bundleFile
	upstream *url.URL
	proxy    *httputil.ReverseProxy // nil without an upstream
	log      *slog.Logger
	metrics  *Metrics
}

// NewPublic returns the handler of siobridge's public listener. Requests under opts.Path go
// to the Socket.IO server, except socket.io.js, socket.io.min.js, socket.io.esm.min.js and
// their source maps, which are served from opts.Bundle with an ETag and
// "Cache-Control: public, max-age=3600" (gzip-compressed for clients that accept it). Every
// other request is reverse-proxied to opts.Upstream with X-Forwarded-For, -Host and -Proto
// set; WebSocket upgrades and streamed responses pass through, hop-by-hop headers do not.
// When the app cannot be reached the client gets a small HTML page saying so, with 502 (504
// for a timeout).
//
// It fails on a missing SocketIO handler, a Path not starting and ending with "/", an Upstream
// that is not an absolute http(s) URL, or a bundle file that exists but cannot be read.
func NewPublic(opts PublicOptions) (http.Handler, error) {
	if opts.SocketIO == nil {
		return nil, errors.New("proxy: PublicOptions.SocketIO is required")
	}
	if !strings.HasPrefix(opts.Path, "/") || !strings.HasSuffix(opts.Path, "/") {
		return nil, fmt.Errorf("proxy: the Socket.IO path must start and end with \"/\", got %q", opts.Path)
	}
	p := &public{path: opts.Path, sio: opts.SocketIO, log: opts.Logger, metrics: opts.Metrics}
	if p.log == nil {
		p.log = slog.Default()
	}
	var err error
	if p.bundle, err = loadBundle(opts.Bundle); err != nil {
		return nil, err
	}
	if u := opts.Upstream; u != nil {
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("proxy: the upstream must be an absolute http(s) URL, got %q", u.Redacted())
		}
		p.upstream = u
		p.proxy = p.newReverseProxy()
	}
	return p, nil
}

func (p *public) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, p.path); ok {
		if isBundleName(rest) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			p.serveBundle(w, r, rest)
			return
		}
		p.sio.ServeHTTP(w, r)
		return
	}
	if p.proxy == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"no upstream configured"}`+"\n")
		return
	}
	pw := &proxyWriter{Writer: httpstat.Writer{ResponseWriter: w}, in: r}
	defer func() { p.metrics.proxyRequest(pw.Status()) }()
	p.proxy.ServeHTTP(pw, r)
}

func (p *public) newReverseProxy() *httputil.ReverseProxy {
	dialer := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}
	upstream := p.upstream
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			// The app is reached directly, whatever HTTP_PROXY says.
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        upstreamIdleConns,
			MaxIdleConnsPerHost: upstreamIdleConns,
			IdleConnTimeout:     upstreamIdleTimeout,
			TLSHandshakeTimeout: upstreamTLSTimeout,
			// Pass the client's Accept-Encoding and the app's Content-Encoding through as they
			// are, rather than decompressing on the way.
			DisableCompression:    true,
			ExpectContinueTimeout: time.Second,
		},
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ErrorHandler:  p.proxyError,
	}
}

// proxyError answers a request the app did not: 502 when it cannot be reached or broke the
// connection, 504 when it timed out.
func (p *public) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	p.metrics.proxyError()
	status, reason := classifyProxyError(err)
	if pw, ok := w.(*proxyWriter); ok && edge.BodyCut(pw.in) {
		// The client stopped sending its body: net/http may have cancelled the request
		// before the proxy saw why.
		status, reason = http.StatusRequestTimeout, "the request's body stalled"
	}
	level := slog.LevelWarn
	if r.Context().Err() != nil || status == http.StatusRequestTimeout {
		// The client went away; the app is not to blame.
		level = slog.LevelDebug
	}
	p.log.Log(r.Context(), level, "proxy: request to the app failed",
		"upstream", p.upstream.Redacted(), "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	if pw, ok := w.(*proxyWriter); ok && pw.hijacked {
		return
	}
	what := "could not reach the app"
	switch status {
	case http.StatusGatewayTimeout:
		what = "timed out waiting for the app"
	case http.StatusRequestTimeout:
		what = "stopped sending the request to the app"
	}
	text := http.StatusText(status)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>%d %s</title></head>
<body>
<h1>%d %s</h1>
<p>siobridge %s at %s: %s</p>
</body>
</html>
`, status, text, status, text, what, html.EscapeString(p.upstream.Redacted()), html.EscapeString(reason))
}

// classifyProxyError picks the status for a proxy error and a reason short enough for a page:
// "connection refused" rather than the whole chain of wrapped errors.
func classifyProxyError(err error) (int, string) {
	if errors.Is(err, edge.ErrBodyTimeout) {
		return http.StatusRequestTimeout, "the request's body stalled"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		var sysErr *os.SyscallError
		if errors.As(opErr.Err, &sysErr) {
			return http.StatusBadGateway, sysErr.Err.Error()
		}
		if isTimeout(opErr.Err) {
			return http.StatusBadGateway, "connection timed out"
		}
		return http.StatusBadGateway, opErr.Err.Error()
	}
	if isTimeout(err) {
		return http.StatusGatewayTimeout, "no answer in time (" + err.Error() + ")"
	}
	return http.StatusBadGateway, err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// proxyWriter is the httpstat.Writer of a proxied request; a hijack (a WebSocket upgrade) is
// recorded as 101, and tells the error handler that nothing can be written any more.
type proxyWriter struct {
	httpstat.Writer
	hijacked bool
	in       *http.Request // the request as the proxy got it (the error handler gets a clone)
}

// Hijack is for http.ResponseController, which httputil.ReverseProxy uses on upgrades.
func (w *proxyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		if w.Code == 0 {
			w.Code = http.StatusSwitchingProtocols
		}
	}
	return conn, brw, err
}
