package redisadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newStreamsNode is newNode with the streams adapter, and connection state recovery for
// window when it is not 0.
func newStreamsNode(t testing.TB, r *testkit.Redis, opts Options, window time.Duration) *node {
	t.Helper()
	return newStreamsNodeAt(t, r.Addr(), opts, window)
}

// newStreamsNodeAt is newStreamsNode with Redis at addr (a cutProxy's, say).
func newStreamsNodeAt(t testing.TB, addr string, opts Options, window time.Duration) *node {
	t.Helper()
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	return startNode(t, redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second}), NewStreams, opts,
		socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: window}})
}

func (n *node) streams() *StreamsAdapter { return n.ns().Cluster().(*StreamsAdapter) }

// waitNodes waits until every node's adapter of "/" reads the stream and counts want nodes.
func waitNodes(t testing.TB, want int, nodes ...*node) {
	t.Helper()
	testkit.Poll(t, 10*time.Second, fmt.Sprintf("the adapters to count %d nodes", want), func() bool {
		for _, n := range nodes {
			if n.ns().ClusterHealth() != nil || n.streams().Nodes() != want {
				return false
			}
		}
		return true
	})
}

// TestStreamsTwoNodes runs two siobridge nodes on the streams adapter: broadcasts (binary,
// rooms, except) both ways, counts, socket queries, remote joins, acks and disconnects.
func TestStreamsTwoNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newStreamsNode(t, r, Options{}, 0)
	b := newStreamsNode(t, r, Options{}, 0)
	ac, asid := a.client()
	bc, bsid := b.client()
	waitNodes(t, 2, a, b)
	ctx := ctxTimeout(t, 30*time.Second)
	if uid := a.streams().UID(); len(uid) != 16 {
		t.Fatalf("uid %q, want 16 hex characters", uid)
	}

	t.Run("emit both ways, binary included", func(t *testing.T) {
		if _, err := a.ns().Emit("hello", 1, []byte{7}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*socketiotest.Client{ac, bc} {
			expect(t, c, `451-["hello",1,{"_placeholder":true,"num":0}]`)
			expect(t, c, "bin:\x07")
		}
		if _, err := b.ns().Emit("back", map[string]any{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["back",{"k":"v"}]`)
		expect(t, bc, `42["back",{"k":"v"}]`)
	})

	t.Run("rooms and except", func(t *testing.T) {
		b.socket(bsid).Join("room-x")
		if _, err := a.ns().To("room-x").Emit("in-room"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["in-room"]`)
		if _, err := a.ns().To("room-x", "other").Except(asid).Emit("multi"); err != nil {
			t.Fatal(err)
		}
		expect(t, bc, `42["multi"]`)
		if _, err := b.ns().Except("room-x").Emit("not-x"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["not-x"]`)
		if _, err := a.ns().Emit("marker"); err != nil {
			t.Fatal(err)
		}
		expect(t, ac, `42["marker"]`) // neither in-room nor multi
		expect(t, bc, `42["marker"]`) // not not-x
		b.socket(bsid).Leave("room-x")
	})

	testQueriesAcrossNodes(t, ctx, a, b, ac, bc, bsid)

	t.Run("a closed node is forgotten at once", func(t *testing.T) {
		b.srv.Close()
		testkit.Poll(t, 5*time.Second, "a to forget b", func() bool { return a.streams().Nodes() == 1 })
	})
}

// xaddEntry writes one entry to the stream as another node would.
func xaddEntry(t *testing.T, rdb *redis.Client, values ...any) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "socket.io", ID: "*", Values: values}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestStreamsMembership: a node is known from its messages, answered when it announces
// itself, forgotten when silent for HeartbeatTimeout; a node that publishes nothing sends
// heartbeats every HeartbeatInterval; malformed entries are counted and skipped.
func TestStreamsMembership(t *testing.T) {
	r := testkit.StartRedis(t)
	var malformed atomic.Int64
	a := newStreamsNode(t, r, Options{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  600 * time.Millisecond,
		OnMalformed:       func() { malformed.Add(1) },
	}, 0)
	waitNodes(t, 1, a)
	rdb := a.rdb

	// Entries that are not messages: counted, never fatal.
	for _, v := range [][]any{
		{"nsp", "/", "type", "99"},
		{"nsp", "/", "type", "3", "data", "{not json"},
		{"nsp", "/", "type", "3", "data", "!!!not base64"},
		{"nsp", "/", "type", "7", "data", "kQ=="}, // msgpack [1]: not an object
		{"nsp", "/"},
	} {
		xaddEntry(t, rdb, v...)
	}
	testkit.Poll(t, 5*time.Second, "5 malformed entries", func() bool { return malformed.Load() == 5 })

	// A ghost node announces itself: a counts it, then forgets it once silent.
	xaddEntry(t, rdb, "uid", "ghost", "nsp", "/", "type", "1")
	testkit.Poll(t, 5*time.Second, "a to count the ghost", func() bool { return a.streams().Nodes() == 2 })
	testkit.Poll(t, 5*time.Second, "a to forget the silent ghost", func() bool { return a.streams().Nodes() == 1 })

	// The emitter is not a node.
	xaddEntry(t, rdb, "uid", "emitter", "nsp", "/", "type", "2")
	xaddEntry(t, rdb, "uid", "ghost2", "nsp", "/", "type", "2")
	testkit.Poll(t, 5*time.Second, "a to count ghost2 only", func() bool { return a.streams().Nodes() == 2 })
	xaddEntry(t, rdb, "uid", "ghost2", "nsp", "/", "type", "13")
	testkit.Poll(t, 5*time.Second, "a to forget ghost2 at its ADAPTER_CLOSE", func() bool { return a.streams().Nodes() == 1 })

	// Heartbeats while idle: several within a few intervals.
	from := xaddEntry(t, rdb, "uid", "emitter", "nsp", "/other", "type", "2")
	testkit.Poll(t, 5*time.Second, "a's idle heartbeats", func() bool {
		entries, err := rdb.XRange(context.Background(), "socket.io", from, "+").Result()
		n := 0
		for _, e := range entries {
			if e.Values["uid"] == a.streams().UID() && e.Values["type"] == "2" {
				n++
			}
		}
		return err == nil && n >= 3
	})
	if n := malformed.Load(); n != 5 {
		t.Fatalf("%d malformed entries counted, want 5", n)
	}
}

// TestStreamsSurvivesRedisRestart: a node reads on from its last entry after Redis comes back,
// whether empty (new entries get later ids) or with the stream it had (nothing read twice,
// nothing written meanwhile lost).
func TestStreamsSurvivesRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newStreamsNode(t, r, Options{RequestTimeout: 2 * time.Second}, 0)
	b := newStreamsNode(t, r, Options{RequestTimeout: 2 * time.Second}, 0)
	bc, _ := b.client()
	waitNodes(t, 2, a, b)
	healthy := func() bool { return a.ns().ClusterHealth() == nil && b.ns().ClusterHealth() == nil }
	lost := func() bool { return b.ns().ClusterHealth() != nil }

	if _, err := a.ns().Emit("before", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["before",1]`)

	// Back empty.
	r.Kill(t)
	testkit.Poll(t, 10*time.Second, "b to see Redis gone", lost)
	r.Restart(t)
	testkit.Poll(t, 15*time.Second, "the adapters to read again", healthy)
	if _, err := a.ns().Emit("after-empty", 2); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["after-empty",2]`)

	// Back with the stream it had, plus an entry written while b could not read: b gets it,
	// and nothing it had read before again.
	ctx := ctxTimeout(t, 10*time.Second)
	if err := a.rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Kill(t)
	testkit.Poll(t, 10*time.Second, "b to see Redis gone", lost)
	r.Restart(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	if n, err := rdb.XLen(ctx, "socket.io").Result(); err != nil || n == 0 {
		t.Fatalf("the stream did not survive: XLEN = %d, %v", n, err)
	}
	xaddEntry(t, rdb, "uid", "other-node", "nsp", "/", "type", "3",
		"data", `{"packet":{"type":2,"data":["while-away",3],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`)
	testkit.Poll(t, 15*time.Second, "the adapters to read again", healthy)
	expect(t, bc, `42["while-away",3]`)
	if _, err := a.ns().Emit("after-kept", 4); err != nil {
		t.Fatal(err)
	}
	expect(t, bc, `42["after-kept",4]`)
}

// TestStreamsAnswersAnnouncement: a node started later learns of the others from their
// answers to its INITIAL_HEARTBEAT, long before any heartbeat is due.
func TestStreamsAnswersAnnouncement(t *testing.T) {
	r := testkit.StartRedis(t)
	opts := Options{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newStreamsNode(t, r, opts, 0)
	waitNodes(t, 1, a)
	b := newStreamsNode(t, r, opts, 0)
	waitNodes(t, 2, a, b)
}

// recoveryNode is a streams node with recovery whose "/" sockets join "r" and get data on
// their first connect, and report their connects and disconnects.
type recoveryNode struct {
	*node
	connected    chan *socketio.Socket
	disconnected chan string
}

func newRecoveryNode(t *testing.T, r *testkit.Redis, window time.Duration) *recoveryNode {
	t.Helper()
	n := &recoveryNode{node: newStreamsNode(t, r, Options{}, window),
		connected: make(chan *socketio.Socket, 16), disconnected: make(chan string, 16)}
	n.ns().OnConnect(func(s *socketio.Socket) {
		if !s.Recovered() {
			s.Join("r")
			s.SetData(json.RawMessage(`{"user":"bob"}`))
		}
		s.OnDisconnect(func(reason string) { n.disconnected <- reason })
		n.connected <- s
	})
	return n
}

// TestStreamsRecoveryAcrossNodes: a client of node a comes back on node b and gets its
// socket back (id, rooms, data) and the stored broadcasts it missed, once and in order,
// with the same offsets as a's clients; after the window it gets a fresh socket.
func TestStreamsRecoveryAcrossNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	window := 3 * time.Second
	a := newRecoveryNode(t, r, window)
	b := newRecoveryNode(t, r, window)
	waitNodes(t, 2, a.node, b.node)

	c := socketiotest.Dial(t, a.ts.URL, "")
	first := c.ConnectFields("")
	s := <-a.connected
	witness := socketiotest.Dial(t, b.ts.URL, "")
	witnessID := witness.ConnectFields("")["sid"]
	<-b.connected

	if _, err := b.ns().To("r").Emit("e", 0); err != nil {
		t.Fatal(err)
	}
	arr := c.ReadEvent()
	offset := socketiotest.Offset(t, arr)
	if w := witness.ReadEvent(); socketiotest.Offset(t, w) != offset {
		t.Fatalf("offsets differ between nodes: %s and %s", w, arr)
	}
	if _, err := redisID(offset); err != nil {
		t.Fatalf("offset %q is not a stream entry id", offset)
	}
	c.Conn.Close()
	if reason := recvResult(t, a.disconnected); reason != "transport close" && reason != "transport error" {
		t.Fatalf("disconnect reason %q", reason)
	}

	// While the client is away, from both nodes: what it would have received, and not. The
	// stream orders what two nodes publish at once as it likes: each emit waits until the
	// witness on b (in "r" too) has it, or a marker sent after it to the witness alone.
	witnessGot := func(prefix string) {
		t.Helper()
		for i := 0; ; i++ {
			msg := witness.Read()
			if strings.HasPrefix(msg, prefix) {
				return
			}
			if i > 10 {
				t.Fatalf("the witness did not get %s; last %q", prefix, msg)
			}
		}
	}
	marker := 0
	sync := func(n *node) {
		t.Helper()
		marker++
		if _, err := n.ns().To(witnessID).Emit("marker", marker); err != nil {
			t.Fatal(err)
		}
		witnessGot(fmt.Sprintf(`42["marker",%d,`, marker))
	}
	a.ns().To("r").Emit("e", 1)
	sync(a.node)
	b.ns().Emit("e", 2, []byte{2})
	sync(b.node)
	a.ns().To("other").Emit("x", "not in other")
	b.ns().Except("r").Emit("x", "excepted")
	sync(b.node)
	a.ns().All().Volatile().Emit("x", "volatile")
	b.ns().To(first["sid"]).Emit("e", 3)
	sync(b.node)
	a.ns().To("other", "r").Except("nobody").Emit("e", 4)
	sync(a.node)
	sync(b.node) // b's reader has had them all

	c2 := socketiotest.Dial(t, b.ts.URL, "")
	auth := fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offset)
	again := c2.ConnectFields(auth)
	if again["sid"] != first["sid"] || again["pid"] != first["pid"] {
		t.Fatalf("restored %v, was %v", again, first)
	}
	for want := 1; want <= 4; want++ {
		msg := c2.Read()
		if want == 2 {
			if !strings.HasPrefix(msg, `451-["e",2,{"_placeholder":true,"num":0},"`) {
				t.Fatalf("replayed packet 2: %q", msg)
			}
			expect(t, c2, "bin:\x02")
			continue
		}
		if !strings.HasPrefix(msg, fmt.Sprintf(`42["e",%d,"`, want)) {
			t.Fatalf("replayed packet %d: %q", want, msg)
		}
	}
	if _, err := a.ns().Emit("e", "new"); err != nil {
		t.Fatal(err)
	}
	if arr := c2.ReadEvent(); string(arr[1]) != `"new"` {
		t.Fatalf("after the replay: %s", arr)
	}
	s2 := recvResult(t, b.connected)
	if s2.ID() != s.ID() || !s2.Recovered() {
		t.Fatalf("socket %s recovered=%v, was %s", s2.ID(), s2.Recovered(), s.ID())
	}
	if got := s2.Rooms(); !slices.Equal(got, sortedCopy([]string{s.ID(), "r"})) {
		t.Fatalf("rooms %v", got)
	}
	if d, _ := json.Marshal(s2.Data()); string(d) != `{"user":"bob"}` {
		t.Fatalf("data %s", d)
	}

	// Away longer than the window: a fresh socket.
	if _, err := a.ns().To("r").Emit("e", "last"); err != nil {
		t.Fatal(err)
	}
	lastOffset := socketiotest.Offset(t, c2.ReadEvent())
	c2.Conn.Close()
	recvResult(t, b.disconnected)
	key := "sio:session:" + first["pid"]
	testkit.Poll(t, 5*time.Second, "the session to be kept", func() bool {
		return a.rdb.Exists(context.Background(), key).Val() == 1
	})
	testkit.Poll(t, window+5*time.Second, "the session to expire", func() bool {
		return a.rdb.Exists(context.Background(), key).Val() == 0
	})
	c3 := socketiotest.Dial(t, a.ts.URL, "")
	late := c3.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], lastOffset))
	if late["sid"] == first["sid"] || late["pid"] == first["pid"] {
		t.Fatalf("recovered after the window: %v", late)
	}
	if s3 := recvResult(t, a.connected); s3.Recovered() {
		t.Fatal("socket recovered after the window")
	}
}

// redisID parses an offset as a stream entry id.
func redisID(s string) (streamID, error) {
	id, ok := parseStreamID(s)
	if !ok {
		return id, fmt.Errorf("not an entry id: %q", s)
	}
	return id, nil
}

// TestStreamsRecoveryRefused: a CONNECT with an unknown pid, an offset that is not an entry
// id, or one no longer in the stream gets a fresh socket; the session is taken out of Redis
// all the same, as Node.js does.
func TestStreamsRecoveryRefused(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newRecoveryNode(t, r, time.Minute)
	waitNodes(t, 1, a.node)
	ctx := ctxTimeout(t, 30*time.Second)

	c := socketiotest.Dial(t, a.ts.URL, "")
	first := c.ConnectFields("")
	<-a.connected
	if _, err := a.ns().To("r").Emit("e", 0); err != nil {
		t.Fatal(err)
	}
	offset := socketiotest.Offset(t, c.ReadEvent())
	for _, tc := range []struct {
		name    string
		ownPID  bool // the pid of the socket just dropped, else another
		offset  string
		deleted bool // the session is out of Redis afterwards
	}{
		{"unknown pid", false, offset, false},
		{"not an entry id", true, "abc-1", false},
		{"not in the stream", true, "1-0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Conn.Close()
			recvResult(t, a.disconnected)
			key := "sio:session:" + first["pid"]
			testkit.Poll(t, 5*time.Second, "the session to be kept", func() bool {
				return a.rdb.Exists(ctx, key).Val() == 1
			})
			pid := "nobody"
			if tc.ownPID {
				pid = first["pid"]
			}
			c = socketiotest.Dial(t, a.ts.URL, "")
			got := c.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, pid, tc.offset))
			if got["sid"] == first["sid"] {
				t.Fatalf("recovered with %s: %v", tc.name, got)
			}
			if s := recvResult(t, a.connected); s.Recovered() {
				t.Fatal("socket recovered")
			}
			if deleted := a.rdb.Exists(ctx, key).Val() == 0; deleted != tc.deleted {
				t.Fatalf("session deleted = %v, want %v", deleted, tc.deleted)
			}
			first = got // the next case drops this socket
		})
	}
}

// TestStreamsPublishesKeptWhileRedisIsUnreachable: node A, cut off from Redis, broadcasts 20
// stored events (recovery on); once Redis is reachable again, a client of node B and one of
// A itself get all 20 and then the next, in order, none twice, with offsets.
func TestStreamsPublishesKeptWhileRedisIsUnreachable(t *testing.T) {
	r := testkit.StartRedis(t)
	px := startCutProxy(t, r.Addr())
	a := newStreamsNodeAt(t, px.addr(), Options{}, time.Minute)
	b := newStreamsNode(t, r, Options{}, time.Minute)
	waitNodes(t, 2, a, b)
	ca := socketiotest.Dial(t, a.ts.URL, "")
	ca.ConnectFields("")
	cb := socketiotest.Dial(t, b.ts.URL, "")
	cb.ConnectFields("")

	px.cut(true)
	testkit.Poll(t, 10*time.Second, "A to notice Redis is unreachable", func() bool { return a.ns().ClusterHealth() != nil })
	const n = 20
	for i := range n {
		if _, err := a.ns().Emit("kept", i); err != nil {
			t.Fatalf("Emit while Redis is unreachable: %v", err)
		}
	}
	px.cut(false)
	testkit.Poll(t, 10*time.Second, "A to reach Redis again", func() bool { return a.ns().ClusterHealth() == nil })
	if _, err := a.ns().Emit("after"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*socketiotest.Client{cb, ca} {
		for i := range n {
			got := c.ReadEvent()
			if string(got[0]) != `"kept"` || string(got[1]) != fmt.Sprint(i) || len(got) != 3 {
				t.Fatalf("got %s, want kept %d with its offset", got, i)
			}
		}
		if got := c.ReadEvent(); string(got[0]) != `"after"` {
			t.Fatalf("got %s, want after", got)
		}
	}
}
