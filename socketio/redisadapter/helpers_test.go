package redisadapter

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisBinary is Debian's redis-server, which `make deps` installs.
const redisBinary = "/usr/bin/redis-server"

// redisServer is a redis-server of the test's own, on a free loopback port, without
// persistence, in a temporary directory.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin := redisBinary
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("redis-server")
		if lerr != nil {
			t.Fatalf("redis-server is not installed (%v); run `make deps` (it installs Debian's redis-server package)", err)
		}
		bin = p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &redisServer{t: t, port: port, dir: t.TempDir()}
	r.start(bin)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	waitFor(r.t, 10*time.Second, "redis-server to answer PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// stop ends the server and waits for it (idempotent).
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.t.Errorf("redis-server did not exit")
	}
	r.cmd = nil
}

// restart starts the server again on the same port.
func (r *redisServer) restart() {
	r.t.Helper()
	bin := redisBinary
	if _, err := os.Stat(bin); err != nil {
		bin, _ = exec.LookPath("redis-server")
	}
	r.start(bin)
}

// waitFor polls cond every 10ms until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("REDISADAPTER_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// node is one siobridge Socket.IO server with the Redis adapter, on its own httptest server.
type node struct {
	t   testing.TB
	srv *socketio.Server
	ts  *httptest.Server
	rdb *redis.Client
}

func newNode(t testing.TB, r *redisServer, opts Options) *node {
	t.Helper()
	return newNodeAt(t, r.addr(), opts)
}

// newNodeAt is newNode with Redis at addr (a cutProxy's, say).
func newNodeAt(t testing.TB, addr string, opts Options) *node {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
	opts.Client = rdb
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	srv := socketio.NewServer(socketio.Options{Cluster: New(opts), Logger: opts.Logger})
	ts := httptest.NewServer(srv)
	n := &node{t: t, srv: srv, ts: ts, rdb: rdb}
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		_ = rdb.Close()
	})
	return n
}

func (n *node) ns() *socketio.Namespace { return n.srv.Of("/") }

func (n *node) adapter() *Adapter { return n.ns().Cluster().(*Adapter) }

// client connects a raw Socket.IO client to the node's "/" and returns it with its socket id.
func (n *node) client() (*socketiotest.Client, string) {
	n.t.Helper()
	c := socketiotest.Dial(n.t, n.ts.URL, "")
	sid := c.Connect("/", "")
	return c, sid
}

// socket returns the node's socket with id, failing the test if there is none.
func (n *node) socket(id string) *socketio.Socket {
	n.t.Helper()
	s := n.ns().Socket(id)
	if s == nil {
		n.t.Fatalf("no socket %s on this node", id)
	}
	return s
}

// waitHealthy waits until every node's adapter of "/" is subscribed.
func waitHealthy(t testing.TB, nodes ...*node) {
	t.Helper()
	waitFor(t, 10*time.Second, "the adapters to subscribe", func() bool {
		for _, n := range nodes {
			if n.adapter().Healthy() != nil {
				return false
			}
		}
		return true
	})
}

// expect reads the next message, and fails unless it is want.
func expect(t *testing.T, c *socketiotest.Client, want string) {
	t.Helper()
	if got := c.Read(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// readUntil reads messages until one equals want, failing after max messages.
func readUntil(t *testing.T, c *socketiotest.Client, want string, max int) []string {
	t.Helper()
	var seen []string
	for range max {
		got := c.Read()
		if got == want {
			return seen
		}
		seen = append(seen, got)
	}
	t.Fatalf("did not get %q; got %v", want, seen)
	return nil
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var atts [][]byte
	b, err := appendJSON(nil, v, &atts, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cutProxy forwards TCP connections to a Redis server, and can cut them: while cut, it
// closes the connections it carries and every new one at once, as a network that lost the
// server would look to a client.
type cutProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	isCut  bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

func startCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.isCut || p.closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut cuts the proxy (closing what it carries), or lets connections through again.
func (p *cutProxy) cut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = on
	if on {
		for c := range p.conns {
			c.Close()
		}
	}
}
