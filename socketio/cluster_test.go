package socketio

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestReachComplete(t *testing.T) {
	for _, tc := range []struct {
		reach Reach
		want  bool
	}{
		{Reach{}, true}, // a single node
		{Reach{Nodes: 3, Replied: 3}, true},
		{Reach{Nodes: 3, Replied: 2}, false},
	} {
		if got := tc.reach.Complete(); got != tc.want {
			t.Errorf("%+v.Complete() = %v, want %v", tc.reach, got, tc.want)
		}
	}
}

// localCluster is a cluster engine of one node: every call acts through Local alone, and says
// it heard from one node, itself.
type localCluster struct{ local Local }

var one = Reach{Nodes: 1, Replied: 1}

func (c localCluster) Broadcast(p *Packet, opts BroadcastOptions) (int, error) {
	return c.local.Broadcast(p, opts), nil
}

func (c localCluster) BroadcastCount(_ context.Context, p *Packet, opts BroadcastOptions) (Reached, error) {
	n := c.local.Broadcast(p, opts)
	return Reached{Local: n, Total: n, Reach: one}, nil
}

func (c localCluster) BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult), _ func(int, []string)) ([]string, Reached, error) {
	ids := c.local.BroadcastWithAck(ctx, p, opts, onAck)
	return ids, Reached{Local: len(ids), Total: len(ids), Reach: one}, nil
}

func (c localCluster) FetchSockets(_ context.Context, opts BroadcastOptions) ([]SocketInfo, Reach, error) {
	return c.local.FetchSockets(opts), one, nil
}

func (c localCluster) AddSockets(_ context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	n := c.local.AddSockets(opts, rooms)
	return Reached{Local: n, Total: n, Reach: one}, nil
}

func (c localCluster) DelSockets(_ context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	n := c.local.DelSockets(opts, rooms)
	return Reached{Local: n, Total: n, Reach: one}, nil
}

func (c localCluster) DisconnectSockets(_ context.Context, opts BroadcastOptions, close bool) (Reached, error) {
	n := c.local.DisconnectSockets(opts, close)
	return Reached{Local: n, Total: n, Reach: one}, nil
}

func (c localCluster) Rooms(context.Context) ([]RoomInfo, Reach, error) {
	return c.local.Rooms(), one, nil
}

func (localCluster) Close() error { return nil }

// recordingCluster is a localCluster that records the calls it gets.
type recordingCluster struct {
	localCluster
	mu    sync.Mutex
	calls []string
}

func (c *recordingCluster) record(call string) {
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()
}

func (c *recordingCluster) took() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

func (c *recordingCluster) Broadcast(p *Packet, opts BroadcastOptions) (int, error) {
	c.record("Broadcast")
	return c.localCluster.Broadcast(p, opts)
}

func (c *recordingCluster) BroadcastCount(ctx context.Context, p *Packet, opts BroadcastOptions) (Reached, error) {
	c.record("BroadcastCount")
	return c.localCluster.BroadcastCount(ctx, p, opts)
}

func (c *recordingCluster) BroadcastWithAck(ctx context.Context, p *Packet, opts BroadcastOptions, onAck func(AckResult), onLate func(int, []string)) ([]string, Reached, error) {
	c.record("BroadcastWithAck")
	return c.localCluster.BroadcastWithAck(ctx, p, opts, onAck, onLate)
}

func (c *recordingCluster) FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, Reach, error) {
	c.record("FetchSockets")
	return c.localCluster.FetchSockets(ctx, opts)
}

func (c *recordingCluster) AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	c.record("AddSockets")
	return c.localCluster.AddSockets(ctx, opts, rooms)
}

func (c *recordingCluster) DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) (Reached, error) {
	c.record("DelSockets")
	return c.localCluster.DelSockets(ctx, opts, rooms)
}

func (c *recordingCluster) DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) (Reached, error) {
	c.record("DisconnectSockets")
	return c.localCluster.DisconnectSockets(ctx, opts, close)
}

func (c *recordingCluster) Rooms(ctx context.Context) ([]RoomInfo, Reach, error) {
	c.record("Rooms")
	return c.localCluster.Rooms(ctx)
}

// TestClusterEngineCarriesWhatIsNotLocal: with a cluster engine, every call on a selection
// not kept local goes through the engine, once, and its results come back as the engine gave
// them; a selection kept local (and a socket's own join and leave) never reaches the engine,
// and a single node's results say they asked no other node.
func TestClusterEngineCarriesWhatIsNotLocal(t *testing.T) {
	engines := make(chan *recordingCluster, 1)
	srv, ts := newTestServer(t, Options{Cluster: func(l Local) Cluster {
		c := &recordingCluster{localCluster: localCluster{l}}
		if l.Name() == "/" {
			engines <- c
		}
		return c
	}})
	engine := recv(t, engines)
	ns := srv.Of("/")
	connected := make(chan *Socket, 1)
	ns.OnConnect(func(s *Socket) { connected <- s })
	client := socketiotest.Dial(t, ts.URL, "")
	client.Connect("/", "")
	s := recv(t, connected)
	s.Join("r")
	s.Leave("r")
	ctx := context.Background()

	if n, err := ns.Emit("plain"); n != 1 || err != nil {
		t.Fatalf("Emit = %d, %v", n, err)
	}
	client.Expect(`42["plain"]`)
	if r, err := ns.All().EmitContext(ctx, "counted"); r != (Reached{Local: 1, Total: 1, Reach: one}) || err != nil {
		t.Fatalf("EmitContext = %+v, %v", r, err)
	}
	client.Expect(`42["counted"]`)
	type result struct {
		res *AckResults
		err error
	}
	acked := make(chan result, 1)
	go func() {
		res, err := ns.All().EmitWithAck(ctx, "asked")
		acked <- result{res, err}
	}()
	id := strings.TrimSuffix(strings.TrimPrefix(client.Read(), "42"), `["asked"]`)
	client.Write("43" + id + `["yes"]`)
	if r := recv(t, acked); r.err != nil || r.res.Sockets != 1 || len(r.res.Acks) != 1 || r.res.Reach != one {
		t.Fatalf("EmitWithAck = %+v, %v", r.res, r.err)
	}
	if infos, reach, err := ns.All().FetchSockets(ctx); len(infos) != 1 || reach != one || err != nil {
		t.Fatalf("FetchSockets = %+v, %+v, %v", infos, reach, err)
	}
	if r, err := ns.All().SocketsJoin(ctx, "j"); r != (Reached{Local: 1, Total: 1, Reach: one}) || err != nil {
		t.Fatalf("SocketsJoin = %+v, %v", r, err)
	}
	if rooms, reach, err := ns.Rooms(ctx); !slices.Equal(rooms, []RoomInfo{{Name: "j", Sockets: 1}}) || reach != one || err != nil {
		t.Fatalf("Rooms = %+v, %+v, %v", rooms, reach, err)
	}
	if r, err := ns.All().SocketsLeave(ctx, "j"); r.Total != 1 || err != nil {
		t.Fatalf("SocketsLeave = %+v, %v", r, err)
	}
	want := []string{"Broadcast", "BroadcastCount", "BroadcastWithAck", "FetchSockets", "AddSockets", "Rooms", "DelSockets"}
	if got := engine.took(); !slices.Equal(got, want) {
		t.Fatalf("the engine got %v, want %v", got, want)
	}

	// Kept local: the engine is not asked, and nothing says other nodes were.
	local := ns.All().Local()
	if r, err := local.EmitContext(ctx, "here"); r != (Reached{Local: 1, Total: 1}) || err != nil {
		t.Fatalf("local EmitContext = %+v, %v", r, err)
	}
	client.Expect(`42["here"]`)
	if infos, reach, err := local.FetchSockets(ctx); len(infos) != 1 || reach != (Reach{}) || err != nil {
		t.Fatalf("local FetchSockets = %+v, %+v, %v", infos, reach, err)
	}
	if r, err := local.DisconnectSockets(ctx, false); r != (Reached{Local: 1, Total: 1}) || err != nil {
		t.Fatalf("local DisconnectSockets = %+v, %v", r, err)
	}
	client.Expect("41")
	if got := engine.took(); len(got) != 0 {
		t.Fatalf("the engine got %v for calls kept local", got)
	}
}

// observingCluster is a localCluster that records the rooms it is told of.
type observingCluster struct {
	localCluster
	mu     sync.Mutex
	events []string
}

func (c *observingCluster) RoomCreated(room string) { c.add("+" + room) }
func (c *observingCluster) RoomDeleted(room string) { c.add("-" + room) }
func (c *observingCluster) add(e string) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func (c *observingCluster) took() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.events
	c.events = nil
	return out
}

// TestRoomObserverSeesFirstJoinAndLastLeave: an engine that is a RoomObserver hears of a room
// when its first socket joins and when its last one leaves (by leaving, or by disconnecting),
// once each, and never of a socket's own id room.
func TestRoomObserverSeesFirstJoinAndLastLeave(t *testing.T) {
	engines := make(chan *observingCluster, 1)
	srv, ts := newTestServer(t, Options{Cluster: func(l Local) Cluster {
		c := &observingCluster{localCluster: localCluster{l}}
		if l.Name() == "/" {
			engines <- c
		}
		return c
	}})
	engine := recv(t, engines)
	ns := srv.Of("/")
	connected := make(chan *Socket, 2)
	ns.OnConnect(func(s *Socket) { connected <- s })
	c1 := socketiotest.Dial(t, ts.URL, "")
	c1.Connect("/", "")
	s1 := recv(t, connected)
	c2 := socketiotest.Dial(t, ts.URL, "")
	c2.Connect("/", "")
	s2 := recv(t, connected)
	if got := engine.took(); len(got) != 0 {
		t.Fatalf("connecting reported %v; own id rooms are not reported", got)
	}
	s1.Join("a", "b")
	s2.Join("a")
	s1.Leave("a")
	s1.Join("a")
	s2.Leave("a")
	s1.Leave("a", "missing")
	if got, want := engine.took(), []string{"+a", "+b", "-a"}; !slices.Equal(got, want) {
		t.Fatalf("joins and leaves reported %v, want %v", got, want)
	}
	s1.Disconnect(false)
	c1.Expect("41")
	if got, want := engine.took(), []string{"-b"}; !slices.Equal(got, want) {
		t.Fatalf("a disconnect reported %v, want %v", got, want)
	}
}
