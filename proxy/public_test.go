package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"

	"github.com/siobridge/siobridge/internal/testkit"
)

// newPublicServer serves NewPublic(opts) on a loopback listener.
func newPublicServer(t *testing.T, opts PublicOptions) *httptest.Server {
	t.Helper()
	if opts.Path == "" {
		opts.Path = "/socket.io/"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SocketIO == nil {
		opts.SocketIO = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "socket.io handler: "+r.Method+" "+r.URL.Path)
		})
	}
	h, err := NewPublic(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	// Compression is the test's business: no transparent gzip.
	ts.Client().Transport.(*http.Transport).DisableCompression = true
	return ts
}

// newUpstream is the app: a loopback server running h.
func newUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *url.URL) {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return ts, u
}

func sha256ETag(data string) string {
	sum := sha256.Sum256([]byte(data))
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func TestBundleServing(t *testing.T) {
	js := strings.Repeat("console.log('socket.io');\n", 100)
	sourceMap := `{"version":3,"sources":["` + strings.Repeat("a", 500) + `"]}`
	esm := "export{};"
	ts := newPublicServer(t, PublicOptions{Bundle: fstest.MapFS{
		"socket.io.min.js":     {Data: []byte(js)},
		"socket.io.min.js.map": {Data: []byte(sourceMap)},
		"socket.io.esm.min.js": {Data: []byte(esm)},
	}})
	get := func(method, path string, header ...string) testkit.Response {
		t.Helper()
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return testkit.Do(t, ts.Client(), method, ts.URL+path, "", h)
	}
	etag := sha256ETag(js)

	res := get("GET", "/socket.io/socket.io.min.js")
	if res.Status != 200 || res.Body != js {
		t.Fatalf("GET: %d %.60q", res.Status, res.Body)
	}
	for k, want := range map[string]string{
		"Content-Type":     "application/javascript; charset=utf-8",
		"Cache-Control":    "public, max-age=3600",
		"ETag":             etag,
		"Vary":             "Accept-Encoding",
		"Content-Encoding": "",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}

	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		res := get("GET", "/socket.io/socket.io.min.js", "If-None-Match", inm)
		if res.Status != 304 || res.Body != "" || res.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q ETag %q", inm, res.Status, res.Body, res.Header.Get("ETag"))
		}
	}
	if res := get("GET", "/socket.io/socket.io.min.js", "If-None-Match", `"stale"`); res.Status != 200 || res.Body != js {
		t.Errorf("stale If-None-Match: %d", res.Status)
	}
	if res := get("GET", "/socket.io/socket.io.min.js?v=4.8.4"); res.Status != 200 || res.Body != js {
		t.Errorf("with a query: %d", res.Status)
	}

	head := get("HEAD", "/socket.io/socket.io.min.js")
	if head.Status != 200 || head.Body != "" || head.Header.Get("Content-Length") != "2600" || head.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d %q %v", head.Status, head.Body, head.Header)
	}

	t.Run("gzip", func(t *testing.T) {
		res := get("GET", "/socket.io/socket.io.min.js", "Accept-Encoding", "br, gzip;q=0.8")
		if res.Status != 200 || res.Header.Get("Content-Encoding") != "gzip" || len(res.Body) >= len(js) {
			t.Fatalf("%d %v", res.Status, res.Header)
		}
		zr, err := gzip.NewReader(strings.NewReader(res.Body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || string(plain) != js {
			t.Fatalf("gunzipped body differs: %v", err)
		}
		gzETag := res.Header.Get("ETag")
		if gzETag == etag || gzETag == "" {
			t.Fatalf("the gzip representation needs its own ETag, got %q", gzETag)
		}
		if res := get("GET", "/socket.io/socket.io.min.js", "Accept-Encoding", "gzip", "If-None-Match", gzETag); res.Status != 304 {
			t.Fatalf("gzip revalidation: %d", res.Status)
		}
		if res := get("GET", "/socket.io/socket.io.min.js", "Accept-Encoding", "gzip;q=0, *"); res.Header.Get("Content-Encoding") != "" {
			t.Fatal("gzip;q=0 must refuse gzip")
		}
		// Too small to gain from compression: served as it is.
		if res := get("GET", "/socket.io/socket.io.esm.min.js", "Accept-Encoding", "gzip"); res.Body != esm || res.Header.Get("Content-Encoding") != "" {
			t.Fatalf("esm: %q %v", res.Body, res.Header)
		}
	})

	if res := get("GET", "/socket.io/socket.io.min.js.map"); res.Status != 200 || res.Body != sourceMap ||
		res.Header.Get("Content-Type") != "application/json; charset=utf-8" || res.Header.Get("ETag") != sha256ETag(sourceMap) {
		t.Errorf("map: %d %v", res.Status, res.Header)
	}

	missing := get("GET", "/socket.io/socket.io.js")
	if missing.Status != 404 || !strings.Contains(missing.Body, "bundle was not built") ||
		!strings.Contains(missing.Body, "make bundle") || !strings.HasPrefix(missing.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("missing file: %d %q", missing.Status, missing.Body)
	}

	// Other methods, and files that are not the bundle's, are the Socket.IO handler's.
	if res := get("POST", "/socket.io/socket.io.min.js"); res.Body != "socket.io handler: POST /socket.io/socket.io.min.js" {
		t.Errorf("POST: %q", res.Body)
	}
	if res := get("GET", "/socket.io/socket.io.msgpack.min.js"); res.Body != "socket.io handler: GET /socket.io/socket.io.msgpack.min.js" {
		t.Errorf("msgpack: %q", res.Body)
	}
}

func TestBundleNotBuilt(t *testing.T) {
	ts := newPublicServer(t, PublicOptions{Path: "/ws/"})
	for _, name := range bundleNames {
		res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/ws/"+name, "", nil)
		if res.Status != 404 || !strings.Contains(res.Body, name+" is not available: the socket.io-client bundle was not built") {
			t.Errorf("%s: %d %q", name, res.Status, res.Body)
		}
	}
}

func TestSocketIOPathRouting(t *testing.T) {
	srv := socketio.NewServer(socketio.Options{})
	t.Cleanup(srv.Close)
	connected := make(chan *socketio.Socket, 1)
	srv.Of("/").OnConnect(func(s *socketio.Socket) { connected <- s })
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app: "+r.URL.Path)
	})
	ts := newPublicServer(t, PublicOptions{SocketIO: srv, Upstream: app})

	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/socket.io/?EIO=4&transport=polling", "", nil)
	if res.Status != 200 || !strings.HasPrefix(res.Body, `0{"sid":"`) {
		t.Fatalf("polling handshake: %d %q", res.Status, res.Body)
	}

	c := socketiotest.Dial(t, ts.URL, "")
	c.Write("40")
	if got := c.Read(); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("connect: %q", got)
	}
	s := testkit.Recv(t, connected)
	if err := s.Emit("hello", "through the public listener"); err != nil {
		t.Fatal(err)
	}
	c.Expect(`42["hello","through the public listener"]`)

	// Only paths under "/socket.io/" are Socket.IO's.
	for _, path := range []string{"/socket.io", "/socket.iox/", "/"} {
		if res := testkit.Do(t, ts.Client(), "GET", ts.URL+path, "", nil); res.Body != "app: "+path {
			t.Errorf("%s: %q", path, res.Body)
		}
	}
}

// seenRequest is what the app received.
type seenRequest struct {
	method, uri, host, body string
	header                  http.Header
}

func TestProxyForwardsRequests(t *testing.T) {
	seen := make(chan seenRequest, 1)
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- seenRequest{r.Method, r.RequestURI, r.Host, string(body), r.Header.Clone()}
		w.Header().Set("X-App", "yes")
		w.Header().Set("Set-Cookie", "session=1; Path=/")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "hello from the app")
	})
	app.Path = "/base"
	reg := prometheus.NewPedanticRegistry()
	ts := newPublicServer(t, PublicOptions{Upstream: app, Metrics: NewMetrics(reg, nil)})

	req, err := http.NewRequest("POST", ts.URL+"/page?x=1&y=%2F", strings.NewReader("form=data"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "public.example"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Cookie", "a=b")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 || string(body) != "hello from the app" || res.Header.Get("X-App") != "yes" ||
		res.Header.Get("Set-Cookie") != "session=1; Path=/" {
		t.Fatalf("client got %d %q %v", res.StatusCode, body, res.Header)
	}

	got := testkit.Recv(t, seen)
	want := map[string]string{
		// Whatever the client claims is dropped: the app sees the peer siobridge saw.
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "public.example",
		"X-Forwarded-Proto": "http",
		"Cookie":            "a=b",
	}
	for k, v := range want {
		if got.header.Get(k) != v {
			t.Errorf("app saw %s: %q, want %q", k, got.header.Get(k), v)
		}
	}
	if got.method != "POST" || got.uri != "/base/page?x=1&y=%2F" || got.host != app.Host || got.body != "form=data" {
		t.Errorf("app saw %+v", got)
	}
	waitMetric(t, reg, `siobridge_proxy_requests_total{code="201"} 1`)
}

// waitMetric waits until the registry shows line: a proxied request is counted once its
// handler has returned, which can be after its client has read the whole testkit.Response. It fails
// after five seconds.
func waitMetric(t *testing.T, g prometheus.Gatherer, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := testkit.Scrape(t, g)
		if strings.Contains(m, line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%s", line, m)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyStripsHopByHopHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("X-Resp-Kept", "1")
		w.Header().Set("Proxy-Authenticate", "Basic")
	})
	ts := newPublicServer(t, PublicOptions{Upstream: app})
	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/", "", http.Header{
		"Connection":          {"X-Custom, Keep-Alive"},
		"X-Custom":            {"1"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Connection":    {"keep-alive"},
		"Proxy-Authorization": {"Basic c2VjcmV0"},
		"Te":                  {"gzip"},
		"X-Kept":              {"yes"},
	})
	got := testkit.Recv(t, seen)
	for _, k := range []string{"X-Custom", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te"} {
		if v, ok := got[k]; ok {
			t.Errorf("hop-by-hop %s: %q reached the app", k, v)
		}
	}
	if got.Get("Connection") != "" || got.Get("X-Kept") != "yes" {
		t.Errorf("app saw Connection %q, X-Kept %q", got.Get("Connection"), got.Get("X-Kept"))
	}
	if res.Header.Get("X-Resp-Hop") != "" || res.Header.Get("Proxy-Authenticate") != "" || res.Header.Get("X-Resp-Kept") != "1" {
		t.Errorf("client got %v", res.Header)
	}
}

func TestProxyWebSocket(t *testing.T) {
	upgrader := websocket.Upgrader{}
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live" || r.Header.Get("X-Forwarded-Host") == "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		c, err := upgrader.Upgrade(w, r, http.Header{"X-App": {"ws"}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	ts := newPublicServer(t, PublicOptions{Upstream: app})
	c, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/live", nil)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer c.Close()
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("X-App") != "ws" {
		t.Fatalf("handshake answer %d %v", res.StatusCode, res.Header)
	}
	for _, msg := range []string{"one", "two"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, got, err := c.ReadMessage()
		if err != nil || typ != websocket.TextMessage || string(got) != "echo: "+msg {
			t.Fatalf("read %d %q %v", typ, got, err)
		}
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if typ, got, err := c.ReadMessage(); err != nil || typ != websocket.BinaryMessage || !bytes.Equal(got, []byte("echo: \x00\x01\x02")) {
		t.Fatalf("binary: %d %q %v", typ, got, err)
	}
}

func TestProxyStreamsResponses(t *testing.T) {
	release := make(chan struct{})
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// Not text/event-stream, which ReverseProxy flushes anyway: the flush interval must.
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	ts := newPublicServer(t, PublicOptions{Upstream: app})
	res, err := ts.Client().Get(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// The first line arrives while the app still holds the testkit.Response open.
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line: %q %v", line, err)
	}
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	reg := prometheus.NewPedanticRegistry()
	ts := newPublicServer(t, PublicOptions{
		Upstream: &url.URL{Scheme: "http", Host: addr},
		Metrics:  NewMetrics(reg, nil),
	})
	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/dashboard", "", nil)
	want := "siobridge could not reach the app at http://" + addr + ": connection refused"
	if res.Status != 502 || !strings.Contains(res.Body, want) || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("got %d %q %q", res.Status, res.Header.Get("Content-Type"), res.Body)
	}
	for _, line := range []string{`siobridge_proxy_requests_total{code="502"} 1`, `siobridge_proxy_errors_total 1`} {
		waitMetric(t, reg, line)
	}
}

func TestProxyTimeout(t *testing.T) {
	_, app := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers in time
	})
	h, err := NewPublic(PublicOptions{SocketIO: http.NotFoundHandler(), Path: "/socket.io/", Upstream: app,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// A deadline on the request, as a server-wide request timeout would set: it passes while
	// the app holds the request, long after the dial (a dial cut short is another error).
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(ts.Close)
	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/slow", "", nil)
	if res.Status != 504 || !strings.Contains(res.Body, "siobridge timed out waiting for the app at "+app.String()) {
		t.Fatalf("got %d %q", res.Status, res.Body)
	}
}

func TestClassifyProxyError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		reason string
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			502, "connection refused"},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, 502, "connection timed out"},
		{"no such host", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "app", IsNotFound: true}},
			502, "lookup app: no such host"},
		{"deadline", context.DeadlineExceeded, 504, "no answer in time (context deadline exceeded)"},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, 504,
			"no answer in time (read tcp: i/o timeout)"},
		{"reset", errors.New("read: connection reset by peer"), 502, "read: connection reset by peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, reason := classifyProxyError(tt.err)
			if status != tt.status || reason != tt.reason {
				t.Fatalf("got %d %q, want %d %q", status, reason, tt.status, tt.reason)
			}
		})
	}
}

func TestNoUpstream(t *testing.T) {
	ts := newPublicServer(t, PublicOptions{})
	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/anything", "", nil)
	if res.Status != 404 || strings.TrimSpace(res.Body) != `{"error":"no upstream configured"}` || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", res.Status, res.Body)
	}
}

func TestNewPublicErrors(t *testing.T) {
	sio := http.NotFoundHandler()
	tests := []struct {
		name string
		opts PublicOptions
		want string
	}{
		{"no handler", PublicOptions{Path: "/socket.io/"}, "proxy: PublicOptions.SocketIO is required"},
		{"path without trailing slash", PublicOptions{SocketIO: sio, Path: "/socket.io"},
			`proxy: the Socket.IO path must start and end with "/", got "/socket.io"`},
		{"empty path", PublicOptions{SocketIO: sio}, `proxy: the Socket.IO path must start and end with "/", got ""`},
		{"relative upstream", PublicOptions{SocketIO: sio, Path: "/socket.io/", Upstream: &url.URL{Host: "localhost:3000"}},
			`proxy: the upstream must be an absolute http(s) URL, got "//localhost:3000"`},
		{"ftp upstream", PublicOptions{SocketIO: sio, Path: "/socket.io/", Upstream: &url.URL{Scheme: "ftp", Host: "app"}},
			`proxy: the upstream must be an absolute http(s) URL, got "ftp://app"`},
		{"unreadable bundle", PublicOptions{SocketIO: sio, Path: "/socket.io/", Bundle: fstest.MapFS{
			"socket.io.js": {Mode: os.ModeDir}}},
			"proxy: reading the socket.io-client bundle: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPublic(tt.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
