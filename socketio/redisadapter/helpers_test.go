package redisadapter

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	rdb *redis.Client // nil on a Redis Cluster
}

func newNode(t testing.TB, r *testkit.Redis, opts Options) *node {
	t.Helper()
	return newNodeAt(t, r.Addr(), opts)
}

// newNodeAt is newNode with Redis at addr (a cutProxy's, say).
func newNodeAt(t testing.TB, addr string, opts Options) *node {
	t.Helper()
	return newNodeEngine(t, addr, opts, engineio.Options{})
}

// newNodeEngine is newNodeAt with the Engine.IO server's options.
func newNodeEngine(t testing.TB, addr string, opts Options, engine engineio.Options) *node {
	t.Helper()
	return startNode(t, redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second}), New, opts, socketio.Options{Engine: engine})
}

// startNode is a node whose engine factory makes, on client (closed with the node), with
// the server's options sio; opts.Logger defaults to testLogger and is the server's too.
func startNode(t testing.TB, client redis.UniversalClient, factory func(Options) socketio.ClusterFactory, opts Options, sio socketio.Options) *node {
	t.Helper()
	opts.Client = client
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	sio.Cluster, sio.Logger = factory(opts), opts.Logger
	srv := socketio.NewServer(sio)
	ts := httptest.NewServer(srv)
	n := &node{t: t, srv: srv, ts: ts}
	n.rdb, _ = client.(*redis.Client)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		_ = client.Close()
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
	testkit.Poll(t, 10*time.Second, "the adapters to subscribe", func() bool {
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
