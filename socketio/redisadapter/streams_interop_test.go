package redisadapter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// waitNodeServerCount waits until the Node.js server counts want servers.
func waitNodeServerCount(t *testing.T, js *testkit.NodeServer, want int) {
	t.Helper()
	// Node.js reads the stream from "$" on its first XREAD, so it may miss the answers to its
	// announcement and learn of siobridge from its next heartbeat (HeartbeatInterval).
	testkit.Poll(t, 15*time.Second, fmt.Sprintf("the Node.js server to count %d servers", want), func() bool {
		return string(js.Call(t, map[string]any{"cmd": "serverCount"})["count"]) == fmt.Sprint(want)
	})
}

// TestStreamsNodeJSInterop runs a siobridge node and a Node.js Socket.IO server (socket.io 4.8
// with @socket.io/redis-streams-adapter 0.2.3) in one cluster on one Redis stream.
func TestStreamsNodeJSInterop(t *testing.T) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	g := newStreamsNode(t, r, Options{}, 0)
	js := testkit.StartStreamsNodeServer(t, r.URL(), 0)
	gc1, sid1 := g.client()
	gc2, sid2 := g.client()
	n1 := js.Client(t, "n1")
	waitNodes(t, 2, g)
	waitNodeServerCount(t, js, 2)
	ctx := ctxTimeout(t, 60*time.Second)

	t.Run("siobridge emit reaches Node.js clients, binary included", func(t *testing.T) {
		if _, err := g.ns().Emit("from-go", 1, "s", map[string]any{"k": []byte{9}}, json.RawMessage(`{"b":1e3,"a":-0.5}`)); err != nil {
			t.Fatal(err)
		}
		if got, want := js.ClientEvent(t, "n1", "from-go"), `[1,"s",{"k":{"$bin":"09"}},{"b":1000,"a":-0.5}]`; got != want {
			t.Fatalf("Node.js client got %s, want %s", got, want)
		}
		for _, c := range []*socketiotest.Client{gc1, gc2} {
			expect(t, c, `451-["from-go",1,"s",{"k":{"_placeholder":true,"num":0}},{"b":1e3,"a":-0.5}]`)
			expect(t, c, "bin:\x09")
		}
	})

	t.Run("Node.js emit reaches siobridge clients, rooms, except and binary", func(t *testing.T) {
		g.socket(sid1).Join("r")
		g.socket(sid2).Join("r")
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "except": []string{sid2}, "event": "from-node",
			"args": []any{map[string]any{"x": 1}, map[string]string{"$bin": "0a0b"}, "é\u2028"}})
		expect(t, gc1, `451-["from-node",{"x":1},{"_placeholder":true,"num":0},"é\u2028"]`)
		expect(t, gc1, "bin:\x0a\x0b")
		js.Call(t, map[string]any{"cmd": "emit", "event": "marker-node"})
		expect(t, gc1, `42["marker-node"]`)
		expect(t, gc2, `42["marker-node"]`) // not from-node
		js.ClientEvent(t, "n1", "marker-node")
		noClientEvent(t, js, "n1", "from-node")
	})

	t.Run("fetchSockets both ways", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "join", "id": n1, "room": "r"})
		all := fetchSockets(t, js, map[string]any{})
		if len(all) != 3 {
			t.Fatalf("Node.js fetchSockets = %v, want 3 sockets", all)
		}
		if s1 := all[sid1]; !slices.Equal(s1.Rooms, sortedCopy([]string{sid1, "r"})) {
			t.Fatalf("siobridge socket as Node.js sees it: %+v", s1)
		}
		if inRoom := fetchSockets(t, js, map[string]any{"rooms": []string{"r"}, "except": []string{sid2}}); len(inRoom) != 2 || inRoom[sid1].ID == "" || inRoom[n1].ID == "" {
			t.Fatalf("Node.js fetchSockets(r except sid2) = %v", inRoom)
		}
		got, reach, err := g.ns().All().FetchSockets(ctx)
		if err != nil || len(got) != 3 || reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("FetchSockets = %+v, %+v, %v", got, reach, err)
		}
		var remote *socketio.SocketInfo
		for i := range got {
			if got[i].ID == n1 {
				remote = &got[i]
			}
		}
		if remote == nil || !slices.Equal(remote.Rooms, sortedCopy([]string{n1, "r"})) || remote.Handshake == nil || remote.Handshake.Query["EIO"] != "4" {
			t.Fatalf("Node.js socket as siobridge sees it: %+v", remote)
		}
	})

	t.Run("siobridge counts include the Node.js server's sockets", func(t *testing.T) {
		res, err := g.ns().All().EmitContext(ctx, "counted")
		if err != nil || res.Total != 3 || res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitContext = %+v, %v", res, err)
		}
		js.ClientEvent(t, "n1", "counted")
		expect(t, gc1, `42["counted"]`)
		expect(t, gc2, `42["counted"]`)
	})

	t.Run("Node.js emitWithAck gathers siobridge acks", func(t *testing.T) {
		seq := js.Send(t, map[string]any{"cmd": "emitWithAck", "rooms": []string{sid2}, "event": "ask", "args": []any{7}, "timeout": 5000})
		msg := gc2.Read()
		id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["ask",7]`)
		if !ok || id == "" {
			t.Fatalf("siobridge client got %q", msg)
		}
		gc2.Write(fmt.Sprintf(`43%s["yes-go"]`, id))
		if got := string(js.Reply(t, seq)["responses"]); got != `["yes-go"]` {
			t.Fatalf("Node.js emitWithAck responses %s", got)
		}
	})

	t.Run("Node.js disconnectSockets acts on siobridge sockets", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "disconnectSockets", "rooms": []string{sid1}, "close": true})
		gc1.ExpectClosed()
		testkit.Poll(t, 5*time.Second, "sid1 to leave", func() bool { return g.ns().Socket(sid1) == nil })
	})
}

// nodeEvent waits for the Node.js client name to get event and returns its arguments.
func nodeEvent(t *testing.T, js *testkit.NodeServer, name, event string) []json.RawMessage {
	t.Helper()
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(js.ClientEvent(t, name, event)), &args); err != nil || len(args) == 0 {
		t.Fatalf("event %s of %s: %v %v", event, name, args, err)
	}
	return args
}

// TestStreamsNodeJSRecovery: with connection state recovery on both servers, a broadcast
// carries the same offset on each, and a socket.io-client recovers its socket from siobridge
// on Node.js and from Node.js on siobridge, with its id, rooms and data, and the events it
// missed once and in order.
func TestStreamsNodeJSRecovery(t *testing.T) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	// The window: long enough for a drop and a reconnect on a loaded machine, short enough
	// for the last subtest to wait it out.
	window := 5 * time.Second
	g := newRecoveryNode(t, r, window)
	g2 := newRecoveryNode(t, r, window) // a second siobridge node, for the client to move to
	js := testkit.StartStreamsNodeServer(t, r.URL(), window)
	gport := strings.TrimPrefix(g.ts.URL, "http://127.0.0.1:")
	g2port := strings.TrimPrefix(g2.ts.URL, "http://127.0.0.1:")
	n1 := js.Client(t, "n1") // a Node.js client, in no room
	raw := socketiotest.Dial(t, g.ts.URL, "")
	rawID := raw.ConnectFields("")["sid"]
	<-g.connected
	waitNodes(t, 3, g.node, g2.node)
	waitNodeServerCount(t, js, 3)

	t.Run("one broadcast, one offset on both servers", func(t *testing.T) {
		if _, err := g.ns().Emit("from-go", 1); err != nil {
			t.Fatal(err)
		}
		goArgs := raw.ReadEvent()
		nodeArgs := nodeEvent(t, js, "n1", "from-go")
		if socketiotest.Offset(t, goArgs) != socketiotest.Offset(t, nodeArgs) || len(nodeArgs) != 2 {
			t.Fatalf("siobridge's client got %s, Node.js' %s", goArgs, nodeArgs)
		}
		js.Call(t, map[string]any{"cmd": "emit", "event": "from-node", "args": []any{2}})
		goArgs = raw.ReadEvent()
		nodeArgs = nodeEvent(t, js, "n1", "from-node")
		if socketiotest.Offset(t, goArgs) != socketiotest.Offset(t, nodeArgs) || string(goArgs[1]) != "2" {
			t.Fatalf("siobridge's client got %s, Node.js' %s", goArgs, nodeArgs)
		}
	})

	// rc is a socket.io-client with recovery, first on siobridge, where it joins "r" and gets
	// data.
	rcID := js.Call(t, map[string]any{"cmd": "recoveringClient", "name": "rc", "port": gport}).Text("id")
	s := recvResult(t, g.connected)
	if s.ID() != rcID {
		t.Fatalf("siobridge socket %s, client says %s", s.ID(), rcID)
	}
	if _, err := g.ns().To("r").Emit("e", 0); err != nil {
		t.Fatal(err)
	}
	nodeEvent(t, js, "rc", "e")
	raw.ReadEvent()

	// sync waits until the raw client on siobridge and n1 on Node.js have a marker sent after
	// what came before, so that both servers' readers are past it.
	marker := 0
	sync := func() {
		t.Helper()
		marker++
		if _, err := g.ns().To(rawID, n1).Emit("marker", marker); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if arr := raw.ReadEvent(); string(arr[0]) == `"marker"` && string(arr[1]) == fmt.Sprint(marker) {
				break
			} else if i > 10 {
				t.Fatalf("no marker %d: %s", marker, arr)
			}
		}
		nodeEvent(t, js, "n1", "marker")
	}
	// rawGot waits until the raw client (in "r" too) has event e with first argument arg:
	// what the servers publish at once, the stream orders as it likes.
	rawGot := func(arg string) {
		t.Helper()
		for i := 0; ; i++ {
			if arr := raw.ReadEvent(); string(arr[0]) == `"e"` && string(arr[1]) == arg {
				return
			} else if i > 10 {
				t.Fatalf("the raw client did not get e %s: %s", arg, arr)
			}
		}
	}
	expectMissed := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if args := nodeEvent(t, js, "rc", "e"); string(args[0]) != w || len(args) != 2 {
				t.Fatalf("rc got e %s, want %s then an offset", args, w)
			}
		}
	}

	t.Run("from siobridge to Node.js", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "drop", "name": "rc"})
		recvResult(t, g.disconnected)
		g.ns().To("r").Emit("e", 1)
		rawGot("1")
		js.Call(t, map[string]any{"cmd": "emit", "event": "e", "args": []any{2}})
		g.ns().To("other").Emit("e", "not in other")
		js.Call(t, map[string]any{"cmd": "emit", "except": []string{"r"}, "event": "e", "args": []any{"excepted"}})
		sync()
		back := js.Call(t, map[string]any{"cmd": "reconnect", "name": "rc"})
		if back.Text("id") != rcID || string(back["recovered"]) != "true" {
			t.Fatalf("reconnected on Node.js: %v, was %s", back, rcID)
		}
		expectMissed("1", "2")
		js.Call(t, map[string]any{"cmd": "emit", "event": "e", "args": []any{3}})
		expectMissed("3") // nothing missed twice
		got := fetchSockets(t, js, map[string]any{"rooms": []string{rcID}})[rcID]
		if !slices.Equal(got.Rooms, sortedCopy([]string{rcID, "r"})) {
			t.Fatalf("rooms on Node.js %v", got.Rooms)
		}
		if d, _ := json.Marshal(got.Data); string(d) != `{"user":"bob"}` {
			t.Fatalf("data on Node.js %s", d)
		}
	})

	t.Run("from Node.js to siobridge", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "drop", "name": "rc"})
		js.Expect(t, "the Node.js server to see rc go", func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == rcID
		})
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "event": "e", "args": []any{4}})
		rawGot("4")
		g.ns().Emit("e", 5)
		g.ns().Except("r").Emit("e", "excepted")
		sync()
		back := js.Call(t, map[string]any{"cmd": "reconnect", "name": "rc", "port": gport})
		if back.Text("id") != rcID || string(back["recovered"]) != "true" {
			t.Fatalf("reconnected on siobridge: %v, was %s", back, rcID)
		}
		expectMissed("4", "5")
		if _, err := g.ns().Emit("e", 6); err != nil {
			t.Fatal(err)
		}
		expectMissed("6")
		s2 := recvResult(t, g.connected)
		if s2.ID() != rcID || !s2.Recovered() {
			t.Fatalf("socket %s recovered=%v", s2.ID(), s2.Recovered())
		}
		if got := s2.Rooms(); !slices.Equal(got, sortedCopy([]string{rcID, "r"})) {
			t.Fatalf("rooms %v", got)
		}
		if d, _ := json.Marshal(s2.Data()); string(d) != `{"user":"bob"}` {
			t.Fatalf("data %s", d)
		}
	})

	t.Run("from siobridge to siobridge", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "drop", "name": "rc"})
		recvResult(t, g.disconnected)
		g.ns().To("r").Emit("e", 7)
		rawGot("7")
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "event": "e", "args": []any{8}})
		rawGot("8")
		sync()
		back := js.Call(t, map[string]any{"cmd": "reconnect", "name": "rc", "port": g2port})
		if back.Text("id") != rcID || string(back["recovered"]) != "true" {
			t.Fatalf("reconnected on the other siobridge node: %v, was %s", back, rcID)
		}
		expectMissed("7", "8")
		if _, err := g2.ns().Emit("e", 9); err != nil {
			t.Fatal(err)
		}
		expectMissed("9")
		s3 := recvResult(t, g2.connected)
		if s3.ID() != rcID || !s3.Recovered() {
			t.Fatalf("socket %s recovered=%v", s3.ID(), s3.Recovered())
		}
		if got := s3.Rooms(); !slices.Equal(got, sortedCopy([]string{rcID, "r"})) {
			t.Fatalf("rooms %v", got)
		}
		if d, _ := json.Marshal(s3.Data()); string(d) != `{"user":"bob"}` {
			t.Fatalf("data %s", d)
		}
	})

	t.Run("after the window", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "drop", "name": "rc"})
		recvResult(t, g2.disconnected)
		sessions := func() int {
			keys, err := g.rdb.Keys(context.Background(), "sio:session:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			return len(keys)
		}
		testkit.Poll(t, 5*time.Second, "the session to be kept", func() bool { return sessions() == 1 })
		testkit.Poll(t, window+5*time.Second, "the session to expire", func() bool { return sessions() == 0 })
		back := js.Call(t, map[string]any{"cmd": "reconnect", "name": "rc", "port": gport})
		if back.Text("id") == rcID || string(back["recovered"]) != "false" {
			t.Fatalf("reconnected after the window: %v, was %s; want a new id, recovered false", back, rcID)
		}
		if s4 := recvResult(t, g.connected); s4.Recovered() || s4.ID() != back.Text("id") {
			t.Fatalf("socket %s recovered=%v, client says %s", s4.ID(), s4.Recovered(), back.Text("id"))
		}
	})
}
