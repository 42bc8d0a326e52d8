package redisadapter

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newDynamicNode is newNode with "*" in Namespaces: clients make the namespaces they connect to.
func newDynamicNode(t *testing.T, r *testkit.Redis) *node {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), DialTimeout: time.Second})
	srv := socketio.NewServer(socketio.Options{
		Namespaces: []string{"*"},
		Cluster:    New(Options{Client: rdb, Logger: testLogger()}),
		Logger:     testLogger(),
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		_ = rdb.Close()
	})
	return &node{t: t, srv: srv, ts: ts, rdb: rdb}
}

// redisClients is Redis' connected_clients (INFO clients), the test's own connection
// included.
func redisClients(t *testing.T, r *testkit.Redis) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	info, err := c.Info(ctxTimeout(t, 5*time.Second), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("connected_clients %q", v)
			}
			return n
		}
	}
	t.Fatalf("no connected_clients in %q", info)
	return 0
}

// TestDynamicNamespacesShareOneSubscription: a client making many namespaces in one POST
// costs Redis no connection per namespace, the namespaces go when it leaves, and a dynamic
// namespace still spans the nodes.
func TestDynamicNamespacesShareOneSubscription(t *testing.T) {
	const n = 300
	r := testkit.StartRedis(t)
	a, b := newDynamicNode(t, r), newDynamicNode(t, r)
	waitHealthy(t, a, b)
	before := redisClients(t, r)

	p := socketiotest.DialPolling(t, a.ts.URL, "")
	connects := make([]string, n)
	for i := range connects {
		connects[i] = fmt.Sprintf("40/n%d,", i)
	}
	p.Post(connects...)
	answers := p.Read(n)
	for _, m := range answers {
		if !strings.HasPrefix(m, "40/n") || !strings.Contains(m, `{"sid":`) {
			t.Fatalf("a CONNECT was answered %q", m)
		}
	}
	if got := len(a.srv.Namespaces()); got != n+1 {
		t.Fatalf("node A has %d namespaces, want %d", got, n+1)
	}
	// Every namespace is subscribed (NUMSUB counts node A on each request channel)...
	testkit.Poll(t, 10*time.Second, "every namespace to be subscribed", func() bool {
		for _, ns := range a.srv.Namespaces() {
			if ns.Cluster().(*Adapter).Healthy() != nil {
				return false
			}
		}
		return true
	})
	ctx := ctxTimeout(t, 10*time.Second)
	channels := make([]string, n)
	for i := range channels {
		channels[i] = fmt.Sprintf("socket.io-request#/n%d#", i)
	}
	counts, err := a.rdb.PubSubNumSub(ctx, channels...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range channels {
		if counts[ch] != 1 {
			t.Fatalf("NUMSUB %s = %d, want 1", ch, counts[ch])
		}
	}
	// ... over as many Redis connections as before, give or take the publisher's pool.
	after := redisClients(t, r)
	t.Logf("Redis clients: %d with two nodes, %d once node A has %d more namespaces", before, after, n)
	if after > before+2 {
		t.Fatalf("Redis has %d clients with %d namespaces, %d before: connections grow with namespaces", after, n, before)
	}

	// A dynamic namespace spans the nodes, both ways.
	cb := socketiotest.Dial(t, b.ts.URL, "")
	cb.Connect("/n7", "")
	testkit.Poll(t, 10*time.Second, "B's /n7 to be subscribed", func() bool {
		ns := b.srv.Lookup("/n7")
		return ns != nil && ns.Cluster().(*Adapter).Healthy() == nil
	})
	if _, err := a.srv.Lookup("/n7").Emit("from-a", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, `42/n7,["from-a",1]`)
	if got := p.Read(1); got[0] != `42/n7,["from-a",1]` {
		t.Fatalf("A's client got %q", got)
	}
	if _, err := b.srv.Lookup("/n7").Emit("from-b", 2); err != nil {
		t.Fatal(err)
	}
	if got := p.Read(1); got[0] != `42/n7,["from-b",2]` {
		t.Fatalf("A's client got %q", got)
	}
	expect(t, cb, `42/n7,["from-b",2]`)

	// The client leaves: its namespaces go, with their subscriptions.
	p.Post("1")
	testkit.Poll(t, 10*time.Second, "node A's dynamic namespaces to go", func() bool {
		return len(a.srv.Namespaces()) == 1
	})
	testkit.Poll(t, 10*time.Second, "the request channels to lose their subscriber", func() bool {
		counts, err := a.rdb.PubSubNumSub(ctx, channels...).Result()
		if err != nil {
			return false
		}
		for ch, c := range counts {
			if c != 0 && ch != "socket.io-request#/n7#" { // B's socket is still in /n7
				return false
			}
		}
		return counts["socket.io-request#/n7#"] == 1
	})
	if after := redisClients(t, r); after > before+2 {
		t.Fatalf("Redis has %d clients after the namespaces went, %d before", after, before)
	}
	if _, err := b.srv.Lookup("/n7").Emit("still", 3); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, `42/n7,["still",3]`)
}

// TestSharedSubscriptionSurvivesRedisRestart: every namespace on the shared connection is
// subscribed again when Redis comes back.
func TestSharedSubscriptionSurvivesRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newDynamicNode(t, r), newDynamicNode(t, r)
	names := []string{"/one", "/two", "/three"}
	var clients []*socketiotest.Client
	for _, name := range names {
		c := socketiotest.Dial(t, b.ts.URL, "")
		c.Connect(name, "")
		clients = append(clients, c)
		ca := socketiotest.Dial(t, a.ts.URL, "")
		ca.Connect(name, "")
	}
	healthy := func(n *node) func() bool {
		return func() bool {
			for _, ns := range n.srv.Namespaces() {
				if ns.Cluster().(*Adapter).Healthy() != nil {
					return false
				}
			}
			return true
		}
	}
	testkit.Poll(t, 10*time.Second, "the namespaces to be subscribed", func() bool { return healthy(a)() && healthy(b)() })
	r.Kill(t)
	// Both nodes must see the loss before Redis is back: a node that has not read the end of
	// its subscription yet still counts itself subscribed, and what is published before it
	// subscribes again is lost, as on any Redis pub/sub.
	down := func(n *node) bool {
		for _, ns := range n.srv.Namespaces() {
			if ns.Cluster().(*Adapter).Healthy() == nil {
				return false
			}
		}
		return true
	}
	testkit.Poll(t, 10*time.Second, "every namespace of A and B to notice", func() bool { return down(a) && down(b) })
	r.Restart(t)
	testkit.Poll(t, 10*time.Second, "the namespaces to be subscribed again", func() bool { return healthy(a)() && healthy(b)() })
	for i, name := range names {
		if _, err := a.srv.Lookup(name).Emit("back", i); err != nil {
			t.Fatal(err)
		}
		expect(t, clients[i], fmt.Sprintf(`42%s,["back",%d]`, name, i))
	}
}

// TestNewNamespaceCountsItsNode: a namespace made for one call (as the REST API holds one
// with no socket of this node in it) waits for its own subscription before it counts the
// nodes, so the other nodes' sockets are all in the answer. Without the wait, NUMSUB misses
// the node now and then (a few times in these calls), and B's socket with it.
func TestNewNamespaceCountsItsNode(t *testing.T) {
	r := testkit.StartRedis(t)
	a, b := newDynamicNode(t, r), newDynamicNode(t, r)
	c := socketiotest.Dial(t, b.ts.URL, "")
	sid := c.Connect("/fresh", "")
	testkit.Poll(t, 10*time.Second, "B's /fresh to be subscribed", func() bool {
		ns := b.srv.Lookup("/fresh")
		return ns != nil && ns.Cluster().(*Adapter).Healthy() == nil
	})
	waitHealthy(t, a)
	for i := range 300 {
		ns, release := a.srv.Hold("/fresh")
		all, _, err := ns.All().FetchSockets(ctxTimeout(t, 10*time.Second))
		release()
		if err != nil || len(all) != 1 || all[0].ID != sid {
			t.Fatalf("call %d: FetchSockets from a new /fresh on A = %+v, %v; want B's socket %s", i, all, err, sid)
		}
		if a.srv.Lookup("/fresh") != nil {
			t.Fatalf("call %d: /fresh stays on A after the call", i)
		}
	}
}
