package edge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for something that should happen.
const wait = 10 * time.Second

// counts records OnRefuse's calls.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) add(limit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[limit]++
}

func (c *counts) get(limit string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[limit]
}

// serveGuarded serves h on a guarded loopback listener, until the test ends.
func serveGuarded(t *testing.T, opts Options, h http.Handler) (string, *Guard, *counts) {
	t.Helper()
	c := &counts{}
	opts.OnRefuse = c.add
	g := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: wait}
	g.Server(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(g.Listener(ln))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), g, c
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing: %v", err)
	}
}

func (c *client) response() (*http.Response, string) {
	c.t.Helper()
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("reading a body: %v", err)
	}
	return res, string(body)
}

// closed checks the server closes the connection with nothing more sent.
func (c *client) closed() {
	c.t.Helper()
	b, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("the connection stays open: %v", err)
	}
	if len(b) > 0 {
		c.t.Fatalf("after the answer the server sent %q", b)
	}
}

func echoPath(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
}

func TestHeaderLimit(t *testing.T) {
	addr, _, counts := serveGuarded(t, Options{MaxHeaderBytes: 1024}, http.HandlerFunc(echoPath))
	for _, size := range []int{1100, 4000, 20000} {
		c := dial(t, addr)
		c.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", size) + "\r\n\r\n")
		res, _ := c.response()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a %d-byte header: %s, want 431", size, res.Status)
		}
		c.closed()
	}
	// Within the limit it is served, and the connection lives on.
	c := dial(t, addr)
	for range 2 {
		c.send("GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 900) + "\r\n\r\n")
		if res, body := c.response(); res.StatusCode != http.StatusOK || body != "GET /ok 0" {
			t.Fatalf("got %s %q", res.Status, body)
		}
	}
	if n := counts.get(LimitHeaderBytes); n < 2 {
		t.Fatalf("max_header_bytes counted %d times", n)
	}
}

func TestBodyTimeout(t *testing.T) {
	readErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	})
	addr, _, counts := serveGuarded(t, Options{BodyTimeout: 100 * time.Millisecond}, h)
	c := dial(t, addr)
	c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrBodyTimeout) {
			t.Fatalf("the handler's read failed with %v, want ErrBodyTimeout", err)
		}
	case <-time.After(wait):
		t.Fatal("a stalled body was never cut")
	}
	// The request's answer closes the connection.
	if res, _ := c.response(); !res.Close {
		t.Fatalf("the answer after the cut keeps the connection open: %v", res.Header)
	}
	if b, err := io.ReadAll(c.br); len(b) > 0 {
		t.Fatalf("the connection went on after the cut: %q, %v", b, err)
	}
	if counts.get(LimitBodyTimeout) != 1 {
		t.Fatalf("body_timeout counted %d times", counts.get(LimitBodyTimeout))
	}
}

// TestBodyTimeoutIsPerRead: a body that keeps coming, each piece within the timeout, is read
// whole however long it takes, and the deadline is gone once it has ended.
func TestBodyTimeoutIsPerRead(t *testing.T) {
	addr, _, _ := serveGuarded(t, Options{BodyTimeout: time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Longer than the timeout, after the body: the connection's read deadline must not
		// end the request.
		time.Sleep(1500 * time.Millisecond)
		fmt.Fprintf(w, "%d", len(body))
	}))
	c := dial(t, addr)
	c.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
	for range 5 {
		time.Sleep(200 * time.Millisecond) // a slow but steady client
		c.send("a")
	}
	if res, body := c.response(); res.StatusCode != http.StatusOK || body != "5" {
		t.Fatalf("got %s %q", res.Status, body)
	}
}

func TestConnLimits(t *testing.T) {
	addr, g, counts := serveGuarded(t, Options{MaxConnsPerAddr: 2, MaxConns: 3}, http.HandlerFunc(echoPath))
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []*client{a, b} {
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, _ := c.response(); res.StatusCode != http.StatusOK {
			t.Fatalf("got %s", res.Status)
		}
	}
	// A third from the same address is answered 503 and closed as it is accepted.
	c := dial(t, addr)
	res, body := c.response()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, LimitConnsPerAddr) {
		t.Fatalf("over the per-address limit: %s %q", res.Status, body)
	}
	c.closed()
	if g.Open() != 2 || counts.get(LimitConnsPerAddr) != 1 {
		t.Fatalf("%d open, %d refused; want 2, 1", g.Open(), counts.get(LimitConnsPerAddr))
	}
	// One closed frees its place.
	a.c.Close()
	deadline := time.Now().Add(wait)
	for g.Open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d open after one closed", g.Open())
		}
		time.Sleep(time.Millisecond)
	}
	d := dial(t, addr)
	d.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, _ := d.response(); res.StatusCode != http.StatusOK {
		t.Fatalf("after a close: %s", res.Status)
	}
}

func TestConnLimitTotalAndTrustedProxies(t *testing.T) {
	addr, _, counts := serveGuarded(t, Options{MaxConnsPerAddr: 1, MaxConns: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, http.HandlerFunc(echoPath))
	// The proxy's address is not bounded per address: two connections from it are served.
	for range 2 {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, _ := c.response(); res.StatusCode != http.StatusOK {
			t.Fatalf("got %s", res.Status)
		}
	}
	c := dial(t, addr)
	if res, body := c.response(); res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, LimitConns) {
		t.Fatalf("over the total: %s %q", res.Status, body)
	}
	if counts.get(LimitConns) != 1 {
		t.Fatalf("max_tcp_connections counted %d times", counts.get(LimitConns))
	}
}

// TestFailedUpgradeCloses: what follows a request to upgrade is not watched, so when it is
// not answered 101 the connection must not carry another request.
func TestFailedUpgradeCloses(t *testing.T) {
	addr, _, _ := serveGuarded(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no upgrade here", http.StatusBadRequest)
	}))
	c := dial(t, addr)
	c.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	res, _ := c.response()
	if res.StatusCode != http.StatusBadRequest || !res.Close {
		t.Fatalf("got %s, close %v; want 400 and the connection closed", res.Status, res.Close)
	}
	c.closed()
}

// TestRefusedRequestNeverReachesTheHandler: the handler sees neither the refused request nor
// what comes behind it.
func TestRefusedRequestNeverReachesTheHandler(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	addr, _, counts := serveGuarded(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		echoPath(w, r)
	}))
	c := dial(t, addr)
	c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, _ := c.response(); res.StatusCode != http.StatusOK {
		t.Fatalf("got %s", res.Status)
	}
	c.send("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" +
		"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n")
	res, body := c.response()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Content-Length and Transfer-Encoding") {
		t.Fatalf("got %s %q", res.Status, body)
	}
	c.closed()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "GET /first" {
		t.Fatalf("the handler saw %q", seen)
	}
	if counts.get(LimitFraming) != 1 {
		t.Fatalf("request_framing counted %d times", counts.get(LimitFraming))
	}
}

// TestUnread: bytes given back are read first, watched as the start of a request.
func TestUnread(t *testing.T) {
	g := New(Options{})
	a, b := net.Pipe()
	defer b.Close()
	c := &otherConn{Conn: a, w: watch{g: g, framer: newFramer(1024)}}
	c.Unread([]byte("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	buf := make([]byte, 100)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if v := c.w.verdict.Load(); v == nil || *v != verdictLengthAndEncoding {
		t.Fatalf("verdict %v after reading what was given back", v)
	}
	c.Close()
}

// A refusal's log line names the client's address, which the socket is asked for then: the
// watch keeps none of its own.
func TestRefusalLogsClientAddr(t *testing.T) {
	log := &testkit.Lines{}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addr, _, _ := serveGuarded(t, Options{MaxHeaderBytes: 1024, Logger: logger}, http.HandlerFunc(echoPath))
	c := dial(t, addr)
	c.send("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 1100) + "\r\n\r\n")
	if res, _ := c.response(); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("got %s, want 431", res.Status)
	}
	if want := "addr=" + c.c.LocalAddr().String(); !strings.Contains(log.String(), want) {
		t.Fatalf("log:\n%s\nwant a refusal with %s", log, want)
	}
}

// A Conn is kept per connection, WebSocket ones included: past 96 bytes it takes the next
// size class, 16 bytes more for every idle connection.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 96 {
		t.Errorf("Conn is %d bytes, over the 96-byte size class", n)
	}
}
