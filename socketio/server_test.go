package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTestServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	srv := NewServer(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return srv, ts
}

// ackWait is how long tests wait for acks when a socket that never answers makes them wait
// all of it: far longer than a loaded machine takes to carry the answers that do come.
const ackWait = 3 * time.Second

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting")
		var zero T
		return zero
	}
}

func TestNamespacesMultiplexed(t *testing.T) {
	srv, ts := newTestServer(t, Options{Namespaces: []string{"/a"}})
	reasons := make(chan string, 4)
	for _, name := range []string{"/", "/a"} {
		srv.Of(name).OnConnect(func(s *Socket) {
			s.On("ping", func(e *Event) { _ = s.Emit("pong", json.RawMessage(e.Raw)) })
			s.OnDisconnect(func(r string) { reasons <- s.Namespace().Name() + " " + r })
		})
	}
	c := socketiotest.Dial(t, ts.URL, "")
	root := c.Connect("/", "")
	a := c.Connect("/a", "")
	if root == a || len(root) != 20 {
		t.Fatalf("socket ids %q %q", root, a)
	}
	c.Write(`42/a,["ping",1]`)
	if got := c.Read(); got != `42/a,["pong",[1]]` {
		t.Fatalf("got %q", got)
	}
	// Unknown namespace: refused, the others untouched.
	c.Write("40/nope,")
	if got := c.Read(); got != `44/nope,{"message":"Invalid namespace"}` {
		t.Fatalf("got %q", got)
	}
	// Leaving one namespace keeps the others.
	c.Write("41/a,")
	if got := recv(t, reasons); got != "/a client namespace disconnect" {
		t.Fatalf("got %q", got)
	}
	c.Write(`42["ping","x"]`)
	if got := c.Read(); got != `42["pong",["x"]]` {
		t.Fatalf("got %q", got)
	}
	if srv.Of("/a").Len() != 0 || srv.Of("/").Len() != 1 {
		t.Fatal("namespace membership wrong after 41")
	}
	// A malformed packet closes the connection with "parse error".
	c.Write(`42["connect"]`)
	if got := recv(t, reasons); got != "/ parse error" {
		t.Fatalf("got %q", got)
	}
	c.ExpectClosed()
}

func TestWildcardNamespaces(t *testing.T) {
	srv, ts := newTestServer(t, Options{Namespaces: []string{"*"}})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/anything", `{"x":1}`)
	if srv.Of("/anything").Len() != 1 {
		t.Fatal("dynamic namespace not made")
	}
}

func TestAuthorizer(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	auths := make(chan string, 2)
	srv.Of("/").Authorize(func(ctx context.Context, req *ConnectRequest) (*Admission, error) {
		auths <- string(req.Handshake.Auth)
		if strings.Contains(string(req.Handshake.Auth), "bad") {
			return nil, &ConnectError{Message: "not allowed", Data: map[string]int{"code": 42}}
		}
		return &Admission{Data: "alice", Rooms: []string{"vip"}}, nil
	})
	joined := make(chan *Socket, 1)
	srv.Of("/").OnConnect(func(s *Socket) {
		_ = s.Emit("welcome", s.Data())
		joined <- s
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Write(`40{"token":"bad"}`)
	if got := c.Read(); got != `44{"message":"not allowed","data":{"code":42}}` {
		t.Fatalf("got %q", got)
	}
	if got := recv(t, auths); got != `{"token":"bad"}` {
		t.Fatalf("auth %q", got)
	}
	id := c.Connect("/", "")
	if got := recv(t, auths); got != `{}` {
		t.Fatalf("absent auth must be {}, got %q", got)
	}
	if got := c.Read(); got != `42["welcome","alice"]` {
		t.Fatalf("emit in OnConnect must follow CONNECT, got %q", got)
	}
	s := recv(t, joined)
	if s.ID() != id || strings.Join(s.Rooms(), ",") != strings.Join(sortedRooms(id, "vip"), ",") {
		t.Fatalf("rooms %v", s.Rooms())
	}
}

func sortedRooms(rooms ...string) []string {
	out := append([]string(nil), rooms...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestConnectTimeout(t *testing.T) {
	_, ts := newTestServer(t, Options{ConnectTimeout: 50 * time.Millisecond})
	c := socketiotest.Dial(t, ts.URL, "")
	c.ExpectClosed()
}

func TestAcksBothWays(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	sockets := make(chan *Socket, 1)
	srv.Of("/").OnConnect(func(s *Socket) {
		s.On("sum", func(e *Event) {
			args, err := e.Decode()
			if err != nil {
				t.Error(err)
				return
			}
			a, _ := args[0].(json.Number).Int64()
			b, _ := args[1].(json.Number).Int64()
			_ = e.Ack(a+b, []byte{7})
		})
		sockets <- s
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	s := recv(t, sockets)
	c.Write(`425["sum",2,3]`)
	if got := c.Read(); got != `461-5[5,{"_placeholder":true,"num":0}]` {
		t.Fatalf("got %q", got)
	}
	if got := c.Read(); got != "bin:\x07" {
		t.Fatalf("got %q", got)
	}
	type result struct {
		args Args
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a, err := s.EmitWithAck(ctx, "question", "?")
		done <- result{a, err}
	}()
	q := c.Read()
	if !strings.HasPrefix(q, "42") || !strings.HasSuffix(q, `["question","?"]`) {
		t.Fatalf("got %q", q)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(q, "42"), `["question","?"]`)
	c.Write(`461-` + id + `[{"_placeholder":true,"num":0}]`)
	c.WriteBinary([]byte("answer"))
	r := recv(t, done)
	if r.err != nil {
		t.Fatal(r.err)
	}
	vals, err := r.args.Decode()
	if err != nil || string(vals[0].([]byte)) != "answer" {
		t.Fatalf("ack %v %v", vals, err)
	}
	// An ack that never comes ends with the context. The question waits in the connection
	// meanwhile: the client reads it afterwards.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.EmitWithAck(ctx, "question", "again"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EmitWithAck without an answer: %v, want the context's deadline", err)
	}
	if q := c.Read(); !strings.HasPrefix(q, "42") || !strings.HasSuffix(q, `["question","again"]`) {
		t.Fatalf("got %q, want the unanswered question", q)
	}
}

func TestRoomsAndBroadcast(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	ns := srv.Of("/")
	var mu sync.Mutex
	byID := map[string]*Socket{}
	connected := make(chan struct{}, 3)
	ns.OnConnect(func(s *Socket) {
		mu.Lock()
		byID[s.ID()] = s
		mu.Unlock()
		s.On("join", func(e *Event) {
			args, _ := e.Decode()
			s.Join(args[0].(string))
			_ = e.Ack()
		})
		connected <- struct{}{}
	})
	clients := make([]*socketiotest.Client, 3)
	ids := make([]string, 3)
	for i := range clients {
		clients[i] = socketiotest.Dial(t, ts.URL, "")
		ids[i] = clients[i].Connect("/", "")
		recv(t, connected)
	}
	for _, i := range []int{0, 1} {
		clients[i].Write(`421["join","r"]`)
		if got := clients[i].Read(); got != "431[]" {
			t.Fatalf("join ack %q", got)
		}
	}
	n, err := ns.To("r").Except(ids[1]).Emit("news", "only 0")
	if err != nil || n != 1 {
		t.Fatalf("emit: %d %v", n, err)
	}
	n, _ = ns.To("r").Emit("news", "0 and 1")
	if n != 2 {
		t.Fatalf("emit to r reached %d", n)
	}
	n, _ = ns.Emit("news", "all")
	if n != 3 {
		t.Fatalf("emit to all reached %d", n)
	}
	want := [][]string{
		{`42["news","only 0"]`, `42["news","0 and 1"]`, `42["news","all"]`},
		{`42["news","0 and 1"]`, `42["news","all"]`},
		{`42["news","all"]`},
	}
	for i, msgs := range want {
		for _, m := range msgs {
			if got := clients[i].Read(); got != m {
				t.Fatalf("client %d got %q, want %q", i, got, m)
			}
		}
	}
	// Socket.To leaves the sender out.
	mu.Lock()
	s0 := byID[ids[0]]
	mu.Unlock()
	if n, _ := s0.To("r").Emit("news", "from 0"); n != 1 {
		t.Fatalf("socket.To reached %d", n)
	}
	if got := clients[1].Read(); got != `42["news","from 0"]` {
		t.Fatalf("got %q", got)
	}
	if _, err := ns.Emit("disconnect"); err == nil {
		t.Fatal("a reserved event name was emitted")
	}

	ctx := context.Background()
	rooms, _, _ := ns.Rooms(ctx)
	if len(rooms) != 1 || rooms[0] != (RoomInfo{Name: "r", Sockets: 2}) {
		t.Fatalf("rooms %v", rooms)
	}
	infos, _, _ := ns.To("r").FetchSockets(ctx)
	if len(infos) != 2 || infos[0].Handshake == nil || infos[0].Handshake.Address != "127.0.0.1" {
		t.Fatalf("fetch %+v", infos)
	}
	if r, _ := ns.Except("r").SocketsJoin(ctx, "s"); r != (Reached{Local: 1, Total: 1}) {
		t.Fatalf("join reached %+v", r)
	}
	if r, _ := ns.To("r").SocketsLeave(ctx, "r"); r != (Reached{Local: 2, Total: 2}) {
		t.Fatalf("leave reached %+v", r)
	}
	rooms, _, _ = ns.Rooms(ctx)
	if len(rooms) != 1 || rooms[0] != (RoomInfo{Name: "s", Sockets: 1}) {
		t.Fatalf("rooms after join/leave %v", rooms)
	}
	if r, _ := ns.To("s").DisconnectSockets(ctx, false); r != (Reached{Local: 1, Total: 1}) {
		t.Fatalf("disconnect reached %+v", r)
	}
	if got := clients[2].Read(); got != "41" {
		t.Fatalf("got %q", got)
	}
	if ns.Len() != 2 {
		t.Fatalf("%d sockets left", ns.Len())
	}
}

func TestBroadcastWithAck(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	ns := srv.Of("/")
	connected := make(chan string, 2)
	ns.OnConnect(func(s *Socket) { connected <- s.ID() })
	a, b := socketiotest.Dial(t, ts.URL, ""), socketiotest.Dial(t, ts.URL, "")
	idA := a.Connect("/", "")
	idB := b.Connect("/", "")
	recv(t, connected)
	recv(t, connected)
	type result struct {
		res *AckResults
		err error
	}
	done := make(chan result, 1)
	go func() {
		// b never answers, so the wait lasts all of ackWait: a's answer must come within it.
		ctx, cancel := context.WithTimeout(context.Background(), ackWait)
		defer cancel()
		res, err := ns.All().EmitWithAck(ctx, "poll")
		done <- result{res, err}
	}()
	qa, qb := a.Read(), b.Read()
	if qa != qb {
		t.Fatalf("one encoded broadcast must reach both: %q %q", qa, qb)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(qa, "42"), `["poll"]`)
	a.Write("43" + id + `["yes"]`)
	r := recv(t, done)
	if r.err != nil {
		t.Fatal(r.err)
	}
	res := r.res
	if res.Sockets != 2 || len(res.Acks) != 1 || res.Acks[0].SocketID != idA ||
		string(res.Acks[0].Args.Raw) != `["yes"]` || len(res.TimedOut) != 1 || res.TimedOut[0] != idB {
		t.Fatalf("results %+v", res)
	}
}

func TestServerCloseReason(t *testing.T) {
	srv := NewServer(Options{Engine: engineio.Options{}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	reasons := make(chan string, 1)
	connected := make(chan struct{})
	srv.Of("/").OnConnect(func(s *Socket) {
		s.OnDisconnect(func(r string) { reasons <- r })
		close(connected)
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	// OnConnect runs just after the CONNECT answer: close only once it has.
	recv(t, connected)
	srv.Close()
	if got := recv(t, reasons); got != engineio.ReasonServerShutdown {
		t.Fatalf("reason %q", got)
	}
	c.ExpectClosed()
}

// Every socket is in the room named by its id, which other sockets may join too; leaving it
// keeps the socket in the namespace's broadcasts, as in Node.
func TestOwnIDRooms(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	ns := srv.Of("/")
	sockets := make(chan *Socket, 3)
	ns.OnConnect(func(s *Socket) { sockets <- s })
	clients := make([]*socketiotest.Client, 3)
	ss := make([]*Socket, 3)
	for i := range clients {
		clients[i] = socketiotest.Dial(t, ts.URL, "")
		clients[i].Connect("/", "")
		ss[i] = recv(t, sockets)
	}
	a, b := ss[0], ss[1]
	ctx := context.Background()
	reach := func(bc *BroadcastOperator) []string {
		t.Helper()
		infos, _, err := bc.FetchSockets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(infos))
		for i, in := range infos {
			ids[i] = in.ID
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	if got := a.Rooms(); !slices.Equal(got, []string{a.ID()}) {
		t.Fatalf("a new socket's rooms: %v", got)
	}
	if rooms, _, _ := ns.Rooms(ctx); len(rooms) != 0 {
		t.Fatalf("own-id rooms listed: %v", rooms)
	}
	b.Join(a.ID())
	if got := reach(ns.To(a.ID())); !slices.Equal(got, sorted(a.ID(), b.ID())) {
		t.Fatalf("room %s reaches %v", a.ID(), got)
	}
	if rooms, _, _ := ns.Rooms(ctx); len(rooms) != 1 || rooms[0] != (RoomInfo{Name: a.ID(), Sockets: 2}) {
		t.Fatalf("rooms with b in a's room: %v", rooms)
	}
	if got := reach(ns.Except(a.ID())); !slices.Equal(got, []string{ss[2].ID()}) {
		t.Fatalf("except %s reaches %v", a.ID(), got)
	}
	if got := reach(ns.To(a.ID(), b.ID())); !slices.Equal(got, sorted(a.ID(), b.ID())) {
		t.Fatalf("two rooms reach %v", got)
	}

	a.Leave(a.ID())
	if got := a.Rooms(); len(got) != 0 {
		t.Fatalf("rooms after leaving its own: %v", got)
	}
	if got := reach(ns.To(a.ID())); !slices.Equal(got, []string{b.ID()}) {
		t.Fatalf("room %s after a left reaches %v", a.ID(), got)
	}
	if got := reach(ns.All()); len(got) != 3 {
		t.Fatalf("the namespace reaches %v, want all three", got)
	}
	b.Leave(a.ID())
	if rooms, _, _ := ns.Rooms(ctx); len(rooms) != 0 {
		t.Fatalf("rooms after b left: %v", rooms)
	}
	a.Join(a.ID())
	if n, _ := ns.To(a.ID()).Emit("news", 1); n != 1 {
		t.Fatalf("emit to a's room after rejoining reached %d", n)
	}
	clients[0].Expect(`42["news",1]`)
}

// unhealthyCluster is a cluster engine of one node that says it cannot reach the others.
type unhealthyCluster struct{ localCluster }

func (unhealthyCluster) Healthy() error { return errors.New("broker down") }

// TestClusterHealth: a namespace's ClusterHealth is its engine's answer when the engine is a
// HealthChecker, and nil otherwise.
func TestClusterHealth(t *testing.T) {
	single := NewServer(Options{})
	defer single.Close()
	if err := single.Of("/").ClusterHealth(); err != nil {
		t.Fatalf("ClusterHealth on a single node = %v, want nil", err)
	}
	plain := NewServer(Options{Cluster: func(l Local) Cluster { return localCluster{l} }})
	defer plain.Close()
	if err := plain.Of("/").ClusterHealth(); err != nil {
		t.Fatalf("ClusterHealth with an engine that is no HealthChecker = %v, want nil", err)
	}
	srv := NewServer(Options{Cluster: func(l Local) Cluster { return unhealthyCluster{localCluster{l}} }})
	defer srv.Close()
	if err := srv.Of("/").ClusterHealth(); err == nil || err.Error() != "broker down" {
		t.Fatalf("ClusterHealth = %v, want the adapter's error", err)
	}
}
