package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// clientConn is a test client with a name for messages.
type clientConn struct {
	*socketiotest.Client
	name string
}

// threeNodes starts Redis, three siobridge nodes and one client on each.
func threeNodes(t *testing.T, opts Options) (r *testkit.Redis, nodes []*node, sids []string, clients []*clientConn) {
	t.Helper()
	r = testkit.StartRedis(t)
	for i := range 3 {
		n := newNode(t, r, opts)
		nodes = append(nodes, n)
		c, sid := n.client()
		clients = append(clients, &clientConn{c, fmt.Sprint("client", i)})
		sids = append(sids, sid)
	}
	waitHealthy(t, nodes...)
	return r, nodes, sids, clients
}

func TestBroadcastReachesEveryNode(t *testing.T) {
	_, nodes, sids, clients := threeNodes(t, Options{})
	a, b := nodes[0], nodes[1]

	n, err := a.ns().Emit("hello", 1, "two", map[string]any{"z": 1.5, "a": nil}, json.RawMessage(`{"b":1,"a":[true,-2]}`))
	if err != nil || n != 1 {
		t.Fatalf("Emit = %d, %v; want 1 local socket", n, err)
	}
	for _, c := range clients {
		expect(t, c.Client, `42["hello",1,"two",{"a":null,"z":1.5},{"b":1,"a":[true,-2]}]`)
	}

	// Binary arguments travel as msgpack bin and come back as attachments.
	if _, err := a.ns().Emit("bin", []byte{1, 2, 3}, map[string]any{"nested": []byte{}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expect(t, c.Client, `452-["bin",{"_placeholder":true,"num":0},{"nested":{"_placeholder":true,"num":1}}]`)
		expect(t, c.Client, "bin:\x01\x02\x03")
		expect(t, c.Client, "bin:")
	}

	// A room: only the member (on node B) gets it; the marker that follows proves the others
	// got nothing before it.
	b.socket(sids[1]).Join("room")
	if _, err := a.ns().To("room").Emit("in-room", 7); err != nil {
		t.Fatal(err)
	}
	expect(t, clients[1].Client, `42["in-room",7]`)
	if _, err := a.ns().Emit("marker"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expect(t, c.Client, `42["marker"]`)
	}

	// Except a socket of another node, and a room with two names (published on the
	// namespace channel).
	nodes[2].socket(sids[2]).Join("other")
	if _, err := a.ns().To("room", "other").Except(sids[1]).Emit("rooms-except"); err != nil {
		t.Fatal(err)
	}
	expect(t, clients[2].Client, `42["rooms-except"]`)
	if _, err := a.ns().Except(sids[2]).Emit("all-but-c"); err != nil {
		t.Fatal(err)
	}
	expect(t, clients[0].Client, `42["all-but-c"]`)
	expect(t, clients[1].Client, `42["all-but-c"]`)
	if _, err := a.ns().Emit("marker2"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expect(t, c.Client, `42["marker2"]`)
	}

	// Local stays on this node.
	if _, err := b.ns().All().Local().Emit("local-only"); err != nil {
		t.Fatal(err)
	}
	expect(t, clients[1].Client, `42["local-only"]`)
	if _, err := b.ns().Emit("marker3"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expect(t, c.Client, `42["marker3"]`)
	}
}

func TestRemoteJoinLeaveDisconnect(t *testing.T) {
	_, nodes, sids, clients := threeNodes(t, Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 10*time.Second)

	r, err := a.ns().To(sids[1], sids[2]).SocketsJoin(ctx, "team")
	if err != nil || r.Total != 2 {
		t.Fatalf("SocketsJoin = %d, %v; want 2", r.Total, err)
	}
	if !slices.Contains(b.ns().Socket(sids[1]).Rooms(), "team") || !slices.Contains(c.ns().Socket(sids[2]).Rooms(), "team") {
		t.Fatalf("rooms after remote join: %v %v", b.ns().Socket(sids[1]).Rooms(), c.ns().Socket(sids[2]).Rooms())
	}
	if slices.Contains(a.ns().Socket(sids[0]).Rooms(), "team") {
		t.Fatal("the socket on A joined too")
	}

	r, err = a.ns().To("team").Except(sids[2]).SocketsLeave(ctx, "team")
	if err != nil || r.Total != 1 {
		t.Fatalf("SocketsLeave = %d, %v; want 1", r.Total, err)
	}
	if slices.Contains(b.ns().Socket(sids[1]).Rooms(), "team") || !slices.Contains(c.ns().Socket(sids[2]).Rooms(), "team") {
		t.Fatalf("rooms after remote leave: %v %v", b.ns().Socket(sids[1]).Rooms(), c.ns().Socket(sids[2]).Rooms())
	}

	// Every socket joins, this node's included.
	r, err = b.ns().All().SocketsJoin(ctx, "everyone")
	if err != nil || r.Total != 3 {
		t.Fatalf("SocketsJoin(all) = %d, %v; want 3", r.Total, err)
	}

	r, err = a.ns().To("team").DisconnectSockets(ctx, false)
	if err != nil || r.Total != 1 {
		t.Fatalf("DisconnectSockets = %d, %v; want 1", r.Total, err)
	}
	expect(t, clients[2].Client, "41")
	if c.ns().Len() != 0 {
		t.Fatal("the socket on C is still connected")
	}
	r, err = a.ns().To(sids[1]).DisconnectSockets(ctx, true)
	if err != nil || r.Total != 1 {
		t.Fatalf("DisconnectSockets(close) = %d, %v; want 1", r.Total, err)
	}
	clients[1].ExpectClosed()
}

func TestFetchSocketsAndRoomsAcrossNodes(t *testing.T) {
	_, nodes, sids, _ := threeNodes(t, Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxTimeout(t, 10*time.Second)
	a.socket(sids[0]).Join("solo")
	b.socket(sids[1]).Join("pair")
	c.socket(sids[2]).Join("pair")
	b.socket(sids[1]).SetData(map[string]any{"user": "bob"})

	all, _, err := a.ns().All().FetchSockets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]socketio.SocketInfo{}
	for _, s := range all {
		got[s.ID] = s
	}
	if len(all) != 3 || len(got) != 3 {
		t.Fatalf("FetchSockets = %+v; want the 3 sockets", all)
	}
	bob := got[sids[1]]
	if !slices.Equal(bob.Rooms, sortedCopy([]string{sids[1], "pair"})) || bob.Namespace != "/" {
		t.Fatalf("remote socket %+v", bob)
	}
	if data, _ := json.Marshal(bob.Data); string(data) != `{"user":"bob"}` {
		t.Fatalf("remote socket data %s", data)
	}
	if bob.Handshake == nil || bob.Handshake.Address != "127.0.0.1" || bob.Handshake.Query["transport"] != "websocket" || string(bob.Handshake.Auth) != "{}" {
		t.Fatalf("remote handshake %+v", bob.Handshake)
	}

	pair, _, err := a.ns().To("pair").Except(sids[2]).FetchSockets(ctx)
	if err != nil || len(pair) != 1 || pair[0].ID != sids[1] {
		t.Fatalf("FetchSockets(pair except C) = %+v, %v", pair, err)
	}

	rooms, _, err := b.adapter().Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []socketio.RoomInfo{{Name: "pair", Sockets: 2}, {Name: "solo", Sockets: 1}}
	if !slices.Equal(rooms, want) {
		t.Fatalf("Rooms = %+v, want %+v", rooms, want)
	}
}

func TestBroadcastWithAckGathersRemoteAcks(t *testing.T) {
	_, nodes, sids, clients := threeNodes(t, Options{})
	a := nodes[0]
	type result struct {
		res *socketio.AckResults
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := a.ns().All().EmitWithAck(ctx, "question", 42)
		done <- result{res, err}
	}()
	for i, c := range clients {
		msg := c.Read()
		id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["question",42]`)
		if !ok || id == "" {
			t.Fatalf("client %d got %q, want an event with an ack id", i, msg)
		}
		c.Write(fmt.Sprintf(`43%s["answer-%d",{"n":%d}]`, id, i, i))
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.Sockets != 3 || len(r.res.Acks) != 3 || len(r.res.TimedOut) != 0 {
		t.Fatalf("EmitWithAck = %+v", r.res)
	}
	answers := map[string]string{}
	for _, ack := range r.res.Acks {
		answers[ack.SocketID] = string(ack.Args.Raw)
	}
	for i, sid := range sids {
		if want := fmt.Sprintf(`["answer-%d",{"n":%d}]`, i, i); answers[sid] != want {
			t.Fatalf("ack of %s = %q, want %q (all: %v)", sid, answers[sid], want, answers)
		}
	}

	// A socket that does not answer: the wait ends with ctx, by when node B's count has come.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), answerWait)
		defer cancel()
		res, err := a.ns().To(sids[1]).EmitWithAck(ctx, "ignored")
		done <- result{res, err}
	}()
	if msg := clients[1].Read(); !strings.HasSuffix(msg, `["ignored"]`) {
		t.Fatalf("got %q", msg)
	}
	r = <-done
	if r.err != nil || r.res.Sockets != 1 || len(r.res.Acks) != 0 {
		t.Fatalf("EmitWithAck without answer = %+v, %v", r.res, r.err)
	}
	// The silent socket is on another node, which named it: it is in TimedOut.
	if !slices.Equal(r.res.TimedOut, []string{sids[1]}) {
		t.Fatalf("TimedOut = %v, want the remote socket %s", r.res.TimedOut, sids[1])
	}
}

func TestBroadcastCountAcrossNodes(t *testing.T) {
	_, nodes, sids, clients := threeNodes(t, Options{})
	a := nodes[0]
	for i := 1; i < 3; i++ {
		nodes[i].socket(sids[i]).Join("room")
	}

	r, err := a.ns().All().EmitContext(ctxTimeout(t, 5*time.Second), "all")
	if err != nil || r.Local != 1 || r.Total != 3 {
		t.Fatalf("EmitContext to all = %d local, %d total, %v; want 1, 3", r.Local, r.Total, err)
	}
	if r.Reach != (socketio.Reach{Nodes: 3, Replied: 3}) {
		t.Fatalf("reach = %+v; want 3 nodes, 3 replied", r.Reach)
	}
	for _, c := range clients {
		expect(t, c.Client, `42["all"]`)
	}

	// A room with no socket on this node, one socket left out: the count is the other node's.
	r, err = a.ns().To("room").Except(sids[2]).EmitContext(ctxTimeout(t, 5*time.Second), "room")
	if err != nil || r.Local != 0 || r.Total != 1 {
		t.Fatalf("EmitContext to room = %d local, %d total, %v; want 0, 1", r.Local, r.Total, err)
	}
	expect(t, clients[1].Client, `42["room"]`)
	// The others did not get it: their next message is the one after.
	if _, err := a.ns().Emit("next"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if c.name == "client1" {
			continue
		}
		expect(t, c.Client, `42["next"]`)
	}
}

// answerWait is how long a test waits for answers when a node or socket that never answers
// makes it wait all of it (as RequestTimeout, or as the ack context): far longer than a loaded
// machine takes to carry the answers of the others, which must come within it.
const answerWait = 2 * time.Second

func TestBroadcastCountLeavesOutAHungNode(t *testing.T) {
	r := testkit.StartRedis(t)
	const timeout = answerWait
	a := newNode(t, r, Options{RequestTimeout: timeout})
	b := newNode(t, r, Options{RequestTimeout: timeout})
	ca, _ := a.client()
	cb, _ := b.client()
	waitHealthy(t, a, b)

	// A siobridge node that hangs: subscribed (so counted), never answering.
	zombie := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer zombie.Close()
	ps := zombie.Subscribe(context.Background(), "socket.io-request#/#", "socket.io-siobridge#/#")
	defer ps.Close()
	for range 2 {
		if _, err := ps.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	// The context outlasts the request timeout many times over: the timeout ends the wait.
	ctx := ctxTimeout(t, 30*time.Second)
	start := time.Now()
	emitted, err := a.ns().All().EmitContext(ctx, "hi")
	took := time.Since(start)
	if err != nil || emitted.Local != 1 || emitted.Total != 2 {
		t.Fatalf("EmitContext = %d, %d, %v; want 1 local, 2 in all", emitted.Local, emitted.Total, err)
	}
	if emitted.Reach != (socketio.Reach{Nodes: 3, Replied: 2}) {
		t.Fatalf("reach = %+v; want 3 nodes, 2 replied", emitted.Reach)
	}
	if took < timeout || ctx.Err() != nil {
		t.Fatalf("EmitContext returned after %s (context: %v), want the request timeout %s to end its wait for the hung node", took, ctx.Err(), timeout)
	}
	expect(t, ca, `42["hi"]`)
	expect(t, cb, `42["hi"]`)

	// The other cluster-wide calls say the same.
	for name, call := range map[string]func(context.Context) (socketio.Reach, error){
		"FetchSockets": func(ctx context.Context) (socketio.Reach, error) {
			_, reach, err := a.ns().All().FetchSockets(ctx)
			return reach, err
		},
		"Rooms": func(ctx context.Context) (socketio.Reach, error) {
			_, reach, err := a.adapter().Rooms(ctx)
			return reach, err
		},
		"SocketsJoin": func(ctx context.Context) (socketio.Reach, error) {
			r, err := a.ns().All().SocketsJoin(ctx, "r")
			return r.Reach, err
		},
	} {
		reach, err := call(ctxTimeout(t, 10*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if reach != (socketio.Reach{Nodes: 3, Replied: 2}) {
			t.Fatalf("%s: reach = %+v; want 3 nodes, 2 replied", name, reach)
		}
	}
}

// TestCountsAskOtherServersOnlyWhenThereAreAny: with siobridge nodes alone a count sends no
// request beyond the broadcast or action; once a subscriber of the request channel is not a
// siobridge node, each count first asks it for the sockets of the same selection (REMOTE_FETCH
// when it excepts some, SOCKETS otherwise), and one that does not answer is left out of the
// count and of the replies.
func TestCountsAskOtherServersOnlyWhenThereAreAny(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{RequestTimeout: answerWait})
	b := newNode(t, r, Options{RequestTimeout: answerWait})
	ca, sa := a.client()
	cb, sb := b.client()
	waitHealthy(t, a, b)
	b.socket(sb).Join("room")

	// The observer sees every request and broadcast without being counted: PUBSUB NUMSUB
	// counts the subscribers of a channel, not of patterns.
	observer := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer observer.Close()
	ops := observer.PSubscribe(ctxTimeout(t, 10*time.Second), "socket.io-request#/#", "socket.io#/#*")
	defer ops.Close()
	for range 2 {
		if _, err := ops.ReceiveTimeout(ctxTimeout(t, 10*time.Second), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// seen returns the requests the observer got before the broadcast on channel, or (with
	// channel "") before the request of type until: their types, and the requests.
	seen := func(channel string, until int64) (types []int64, reqs []*object) {
		t.Helper()
		for {
			m, err := ops.ReceiveMessage(ctxTimeout(t, 10*time.Second))
			if err != nil {
				t.Fatalf("the observer got no message on %q, or request of type %d: %v", channel, until, err)
			}
			if m.Channel == channel {
				return types, reqs
			}
			if m.Channel != "socket.io-request#/#" {
				continue
			}
			req, err := decodeMessage([]byte(m.Payload))
			if err != nil {
				t.Fatalf("request %q: %v", m.Payload, err)
			}
			typ, _ := asInt(req.get("type"))
			if channel == "" && typ == until {
				return types, reqs
			}
			types, reqs = append(types, typ), append(reqs, req)
		}
	}
	count := func(what string, call func(ctx context.Context) (socketio.Reached, error), want, nodes, replied int) {
		t.Helper()
		r, err := call(ctxTimeout(t, 10*time.Second))
		if err != nil || r.Total != want {
			t.Fatalf("%s = %d, %v; want %d", what, r.Total, err, want)
		}
		if r.Reach != (socketio.Reach{Nodes: nodes, Replied: replied}) {
			t.Fatalf("%s: reach = %+v; want %d nodes, %d replied", what, r.Reach, nodes, replied)
		}
	}
	emitToRoom := func(ctx context.Context) (socketio.Reached, error) {
		return a.ns().To("room").Except(sa).EmitContext(ctx, "news")
	}
	join := func(ctx context.Context) (socketio.Reached, error) { return a.ns().To(sb).SocketsJoin(ctx, "joined") }

	// Siobridge nodes alone: no request precedes the broadcast, only the join precedes the join.
	count("EmitContext with siobridge nodes alone", emitToRoom, 1, 2, 2)
	if types, _ := seen("socket.io#/#room#", 0); len(types) != 0 {
		t.Fatalf("requests before the broadcast, with siobridge nodes alone: types %v, want none", types)
	}
	expect(t, cb, `42["news"]`)
	count("SocketsJoin with siobridge nodes alone", join, 1, 2, 2)
	if types, _ := seen("", typeRemoteJoin); len(types) != 0 {
		t.Fatalf("requests before the join, with siobridge nodes alone: types %v, want none", types)
	}

	// A server that is not a siobridge node and never answers.
	silent := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer silent.Close()
	sps := silent.Subscribe(ctxTimeout(t, 10*time.Second), "socket.io-request#/#")
	defer sps.Close()
	if _, err := sps.ReceiveTimeout(ctxTimeout(t, 10*time.Second), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// It is asked for the broadcast's selection, before the broadcast; B, a siobridge node,
	// leaves that request to it (B's answer would make 3 replies and count sb twice).
	count("EmitContext with a silent server", emitToRoom, 1, 3, 2)
	types, reqs := seen("socket.io#/#room#", 0)
	if !slices.Equal(types, []int64{typeRemoteFetch}) {
		t.Fatalf("requests before the broadcast, with a silent server: types %v, want one REMOTE_FETCH", types)
	}
	opts := optsFromWire(reqs[0].get("opts"))
	if uid, _ := asString(reqs[0].get("uid")); uid != a.adapter().UID() || !truthy(reqs[0].get("skipSiobridge")) ||
		!slices.Equal(opts.Rooms, []string{"room"}) || !slices.Equal(opts.Except, []string{sa}) {
		t.Fatalf("the count's fetch = %s, want A's uid, skipSiobridge, rooms [room], except [%s]", mustJSON(t, reqs[0]), sa)
	}
	expect(t, cb, `42["news"]`)
	count("SocketsJoin with a silent server", join, 1, 3, 2)
	types, reqs = seen("", typeRemoteJoin)
	if !slices.Equal(types, []int64{typeSockets}) {
		t.Fatalf("requests before the join, with a silent server: types %v, want one SOCKETS", types)
	}
	if !truthy(reqs[0].get("skipSiobridge")) || !slices.Equal(asRooms(reqs[0].get("rooms")), []string{sb}) {
		t.Fatalf("the count's request = %s, want skipSiobridge and rooms [%s]", mustJSON(t, reqs[0]), sb)
	}
	if !slices.Contains(b.ns().Socket(sb).Rooms(), "joined") {
		t.Fatalf("sb is in %v, want joined", b.ns().Socket(sb).Rooms())
	}

	// Neither count was of the sockets the emits did not select.
	if _, err := a.ns().Emit("marker"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["marker"]`)
	expect(t, cb, `42["marker"]`)
}

func TestDeadNodeDelaysRequestsAtMostTheTimeout(t *testing.T) {
	r := testkit.StartRedis(t)
	// A waits for a node that does not answer up to its request timeout; B far longer than
	// any context of this test, so that only its context ends its wait.
	const timeout = answerWait
	a := newNode(t, r, Options{RequestTimeout: timeout})
	b := newNode(t, r, Options{RequestTimeout: time.Minute})
	_, sidA := a.client()
	_, sidB := b.client()
	waitHealthy(t, a, b)

	// A node that hangs: subscribed to the request channel (so counted), never answering.
	zombie := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer zombie.Close()
	ps := zombie.Subscribe(context.Background(), "socket.io-request#/#")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}

	ids := func(all []socketio.SocketInfo) []string {
		out := []string{}
		for _, s := range all {
			out = append(out, s.ID)
		}
		return out
	}
	ctx := ctxTimeout(t, 30*time.Second)
	start := time.Now()
	all, _, err := a.ns().All().FetchSockets(ctx)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, sortedCopy([]string{sidA, sidB})) {
		t.Fatalf("FetchSockets = %v, want %v", got, []string{sidA, sidB})
	}
	if took < timeout || ctx.Err() != nil {
		t.Fatalf("FetchSockets returned after %s (context: %v), want the request timeout %s to end its wait for the dead node", took, ctx.Err(), timeout)
	}

	// A shorter ctx wins over the timeout: B's request ends when its context does.
	short, cancel := context.WithTimeout(context.Background(), answerWait)
	defer cancel()
	type result struct {
		all []socketio.SocketInfo
		err error
	}
	done := make(chan result, 1)
	go func() {
		all, _, err := b.ns().All().FetchSockets(short)
		done <- result{all, err}
	}()
	select {
	case res := <-done:
		got := ids(res.all)
		if res.err != nil || !slices.Contains(got, sidB) || slices.ContainsFunc(got, func(id string) bool { return id != sidA && id != sidB }) {
			t.Fatalf("FetchSockets with a short ctx = %v, %v; want B's socket, and A's if it answered in time", got, res.err)
		}
		if short.Err() == nil {
			t.Fatalf("FetchSockets returned before its context ended, with the dead node still counted")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("FetchSockets with a %s ctx is still waiting after 30s (request timeout 1m)", answerWait)
	}

	// A closed node answers nothing, and is no longer counted: B asks nobody and answers
	// with its own socket, long before its context ends.
	if err := a.adapter().Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Poll(t, 5*time.Second, "NUMSUB to drop", func() bool {
		all, _, err := b.adapter().nodeCounts(ctx)
		return err == nil && all == 1
	})
	alone := ctxTimeout(t, 30*time.Second)
	all, reach, err := b.ns().All().FetchSockets(alone)
	if err != nil || !slices.Equal(ids(all), []string{sidB}) || alone.Err() != nil {
		t.Fatalf("FetchSockets alone = %v, %v (context: %v); want B's socket before the context ends", ids(all), err, alone.Err())
	}
	if reach != (socketio.Reach{Nodes: 1, Replied: 1}) {
		t.Fatalf("FetchSockets alone: reach = %+v; want 1 node, 1 replied", reach)
	}
}

func TestRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{RequestTimeout: time.Second})
	b := newNode(t, r, Options{RequestTimeout: time.Second})
	ca, _ := a.client()
	cb, _ := b.client()
	waitHealthy(t, a, b)
	if _, err := a.ns().Emit("before"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["before"]`)
	expect(t, cb, `42["before"]`)

	r.Kill(t)
	testkit.Poll(t, 10*time.Second, "the adapters to notice Redis is gone", func() bool {
		return a.adapter().Healthy() != nil && b.adapter().Healthy() != nil
	})
	// Local clients are still served, and queries answer with what this node has.
	if n, err := a.ns().Emit("during"); err != nil || n != 1 {
		t.Fatalf("Emit while Redis is down = %d, %v", n, err)
	}
	expect(t, ca, `42["during"]`)
	ctx := ctxTimeout(t, 10*time.Second)
	if all, _, err := a.ns().All().FetchSockets(ctx); !errors.Is(err, socketio.ErrClusterUnavailable) || len(all) != 1 {
		t.Fatalf("FetchSockets while Redis is down = %v, %v; want the local socket and ErrClusterUnavailable", all, err)
	}
	// A counted emit reaches the local socket and says that it could not count the others.
	if r, err := a.ns().All().EmitContext(ctx, "counted"); !errors.Is(err, socketio.ErrClusterUnavailable) || r.Local != 1 || r.Total != 1 {
		t.Fatalf("EmitContext while Redis is down = %d, %d, %v; want 1, 1, ErrClusterUnavailable", r.Local, r.Total, err)
	}
	expect(t, ca, `42["counted"]`)

	r.Restart(t)
	waitHealthy(t, a, b)
	if _, err := a.ns().Emit("after"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["after"]`)
	// "during" may still have been published if Redis came back within the publisher's
	// retries; "after" must come.
	if seen := readUntil(t, cb, `42["after"]`, 3); len(seen) > 2 || slices.ContainsFunc(seen, func(m string) bool { return m != `42["during"]` && m != `42["counted"]` }) {
		t.Fatalf("before \"after\", B got %v", seen)
	}
	if _, err := b.ns().Emit("back"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["back"]`)
	expect(t, cb, `42["back"]`)
	all, _, err := b.ns().All().FetchSockets(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("FetchSockets after the restart = %v, %v", all, err)
	}
}

func TestCloseIsClean(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{})
	waitHealthy(t, a)
	ad := a.adapter()
	if err := ad.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ad.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if ad.Healthy() == nil {
		t.Fatal("a closed adapter reports healthy")
	}
	if _, err := a.ns().Emit("x"); err == nil {
		t.Fatal("Emit on a closed adapter: want an error for the other nodes")
	}
	// Closing unsubscribed: nobody is left on the request channel.
	ctx := ctxTimeout(t, 5*time.Second)
	m, err := a.rdb.PubSubNumSub(ctx, "socket.io-request#/#").Result()
	if err != nil || m["socket.io-request#/#"] != 0 {
		t.Fatalf("NUMSUB after Close = %v, %v", m, err)
	}
}

func TestKeyPrefixSeparatesClusters(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{KeyPrefix: "one"})
	b := newNode(t, r, Options{KeyPrefix: "two"})
	c := newNode(t, r, Options{KeyPrefix: "one", PublishOnSpecificResponseChannel: true})
	_, sidA := a.client()
	cb, _ := b.client()
	cc, sidC := c.client()
	waitHealthy(t, a, b, c)
	if _, err := a.ns().Emit("hi"); err != nil {
		t.Fatal(err)
	}
	expect(t, cc, `42["hi"]`)
	if _, err := b.ns().Emit("other"); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, `42["other"]`)
	if _, err := a.ns().Emit("marker"); err != nil {
		t.Fatal(err)
	}
	expect(t, cc, `42["marker"]`)
	// Answers on the requester's own channel reach it.
	ctx := ctxTimeout(t, 5*time.Second)
	all, _, err := c.ns().All().FetchSockets(ctx)
	if err != nil || len(all) != 2 || !slices.Equal([]string{all[0].ID, all[1].ID}, sortedCopy([]string{sidA, sidC})) {
		t.Fatalf("FetchSockets in cluster one = %+v, %v", all, err)
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestNamespacesAreSeparate(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{})
	b := newNode(t, r, Options{})
	for _, n := range []*node{a, b} {
		n.srv.Of("/chat")
	}
	c := socketiotest.Dial(t, b.ts.URL, "")
	c.Connect("/", "")
	c.Connect("/chat", "")
	testkit.Poll(t, 10*time.Second, "the /chat adapters to subscribe", func() bool {
		return a.srv.Of("/chat").Cluster().(*Adapter).Healthy() == nil && b.srv.Of("/chat").Cluster().(*Adapter).Healthy() == nil
	})
	waitHealthy(t, a, b)
	if _, err := a.srv.Of("/chat").Emit("in-chat", 1); err != nil {
		t.Fatal(err)
	}
	expect(t, c, `42/chat,["in-chat",1]`)
	if _, err := a.ns().Emit("in-root"); err != nil {
		t.Fatal(err)
	}
	expect(t, c, `42["in-root"]`)
}

func TestStartsWithoutRedis(t *testing.T) {
	r := testkit.StartRedis(t)
	r.Kill(t)
	a := newNode(t, r, Options{})
	b := newNode(t, r, Options{})
	if err := a.adapter().Healthy(); err == nil || !strings.Contains(err.Error(), "not subscribed") {
		t.Fatalf("Healthy without Redis = %v", err)
	}
	ca, _ := a.client()
	cb, _ := b.client()
	if _, err := a.ns().Emit("alone"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["alone"]`)
	r.Restart(t)
	waitHealthy(t, a, b)
	if _, err := a.ns().Emit("together"); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, `42["together"]`)
	readUntil(t, cb, `42["together"]`, 2)
}

// TestUnsentBroadcastsAreBoundedAndCounted: while Redis is down, the publisher keeps what it
// could not send up to its bound; what does not fit is dropped, logged and counted.
func TestUnsentBroadcastsAreBoundedAndCounted(t *testing.T) {
	r := testkit.StartRedis(t)
	logs := &testkit.Lines{}
	var dropped atomic.Int64
	a := newNode(t, r, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), maxUnsent: 3,
		OnDrop: func(n int) { dropped.Add(int64(n)) }})
	ca, _ := a.client()
	waitHealthy(t, a)
	r.Kill(t)
	testkit.Poll(t, 10*time.Second, "the adapter to notice", func() bool { return a.adapter().Healthy() != nil })
	for i := range 5 {
		if _, err := a.ns().Emit("lost", i); err != nil {
			t.Fatal(err)
		}
		expect(t, ca, fmt.Sprintf(`42["lost",%d]`, i))
	}
	testkit.Poll(t, 10*time.Second, "a warning about the dropped messages", func() bool {
		return strings.Contains(logs.String(), "could not publish") && dropped.Load() == 2
	})
	if log := logs.String(); !strings.Contains(log, "lost its subscription") || !strings.Contains(log, "dropped=1") || strings.Contains(log, "error=<nil>") {
		t.Fatalf("dropped %d; logs:\n%s", dropped.Load(), logs)
	}
}

// TestPublishesKeptWhileRedisIsUnreachable: a node that cannot reach Redis for a while keeps
// what it broadcasts and sends it, in order, once Redis answers; a node that stayed
// connected gets every message, none twice, and readiness (Healthy) says when both
// directions work again.
func TestPublishesKeptWhileRedisIsUnreachable(t *testing.T) {
	r := testkit.StartRedis(t)
	px := startCutProxy(t, r.Addr())
	a := newNodeAt(t, px.addr(), Options{RequestTimeout: time.Second})
	b := newNode(t, r, Options{RequestTimeout: time.Second})
	cb, _ := b.client()
	waitHealthy(t, a, b)
	px.cut(true)
	testkit.Poll(t, 10*time.Second, "A to notice Redis is unreachable", func() bool { return a.adapter().Healthy() != nil })
	const n = 20
	for i := range n {
		if _, err := a.ns().Emit("kept", i); err != nil {
			t.Fatalf("Emit while Redis is unreachable: %v", err)
		}
	}
	if err := a.adapter().Healthy(); err == nil {
		t.Fatal("A is healthy while it cannot reach Redis")
	}
	px.cut(false)
	waitHealthy(t, a)
	if _, err := a.ns().Emit("after"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		expect(t, cb, fmt.Sprintf(`42["kept",%d]`, i))
	}
	expect(t, cb, `42["after"]`)
}

// TestLegacyClientAcrossNodes: a socket.io-client 2.x socket (Engine.IO v3) on one node is a
// socket like any other to the cluster: another node finds it by its id, puts it in a room,
// and reaches it there with a binary broadcast, which it gets in v3's binary frames.
func TestLegacyClientAcrossNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	a := newNode(t, r, Options{})
	b := newNodeEngine(t, r.Addr(), Options{}, engineio.Options{AllowEIO3: true})
	connected := make(chan *socketio.Socket, 1)
	b.ns().OnConnect(func(s *socketio.Socket) { connected <- s })
	c := socketiotest.DialEIO3(t, b.ts.URL, "", "")
	expect(t, c, "40")
	var sid string
	select {
	case s := <-connected:
		sid = s.ID()
	case <-time.After(10 * time.Second):
		t.Fatal("the 2.x client did not connect")
	}
	waitHealthy(t, a, b)
	ctx := ctxTimeout(t, 10*time.Second)
	all, _, err := a.ns().All().FetchSockets(ctx)
	if err != nil || len(all) != 1 || all[0].ID != sid {
		t.Fatalf("FetchSockets from A = %+v, %v; want the 2.x socket %s", all, err, sid)
	}
	if r, err := a.ns().To(sid).SocketsJoin(ctx, "old"); err != nil || r.Total != 1 {
		t.Fatalf("SocketsJoin from A = %+v, %v", r, err)
	}
	testkit.Poll(t, 5*time.Second, "the 2.x socket to join", func() bool {
		return slices.Contains(b.ns().Socket(sid).Rooms(), "old")
	})
	if _, err := a.ns().To("old").Emit("to-old", []byte{5}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, `451-["to-old",{"_placeholder":true,"num":0}]`)
	expect(t, c, "bin:\x05")
}
