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

// noClientEvent fails if the Node.js client name got event among the messages printed so far
// (call it after a later marker has arrived: one publisher's messages arrive in order).
func noClientEvent(t *testing.T, js *testkit.NodeServer, name, event string) {
	t.Helper()
	for _, m := range js.Pending() {
		if m.Kind() == "client-event" && m.Text("name") == name && m.Text("event") == event {
			t.Fatalf("the Node.js client %s got %q: %s", name, event, m["args"])
		}
	}
}

// TestShardedNodeJSInterop runs a siobridge node and a Node.js Socket.IO server (socket.io 4.8
// with createShardedAdapter of @socket.io/redis-adapter 8.3) in one cluster on Redis 7's
// sharded pub/sub.
func TestShardedNodeJSInterop(t *testing.T) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	g := newShardedNode(t, r, Options{RequestTimeout: 5 * time.Second})
	js := testkit.StartShardedNodeServer(t, r.URL(), 5*time.Second)
	gc1, sid1 := g.client()
	gc2, sid2 := g.client()
	n1 := js.Client(t, "n1")
	testkit.Poll(t, 10*time.Second, "the adapter to subscribe", func() bool { return g.ns().ClusterHealth() == nil })
	waitShardCount(t, g.rdb, "socket.io#/#", 2)
	ctx := ctxTimeout(t, 60*time.Second)
	if got := js.Call(t, map[string]any{"cmd": "serverCount"})["count"]; string(got) != "2" {
		t.Fatalf("Node.js serverCount = %s, want 2", got)
	}

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

	t.Run("Node.js single-room emit arrives on the room's channel", func(t *testing.T) {
		// Only siobridge has sockets in "r": Node.js publishes on socket.io#/#r#, which
		// siobridge subscribes to while the room exists here.
		g.socket(sid1).Join("r")
		waitShardCount(t, g.rdb, "socket.io#/#r#", 1)
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "event": "from-node",
			"args": []any{map[string]any{"x": 1}, map[string]string{"$bin": "0a0b"}, "é\u2028"}})
		expect(t, gc1, `451-["from-node",{"x":1},{"_placeholder":true,"num":0},"é\u2028"]`)
		expect(t, gc1, "bin:\x0a\x0b")
		g.socket(sid2).Join("r")
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "except": []string{sid1}, "event": "r-but-1"})
		expect(t, gc2, `42["r-but-1"]`)
		js.Call(t, map[string]any{"cmd": "emit", "event": "marker-node"})
		expect(t, gc1, `42["marker-node"]`) // not r-but-1
		expect(t, gc2, `42["marker-node"]`)
		js.ClientEvent(t, "n1", "marker-node")
		noClientEvent(t, js, "n1", "from-node")
		noClientEvent(t, js, "n1", "r-but-1")
	})

	t.Run("siobridge room emit reaches Node.js sockets in the room, except honoured", func(t *testing.T) {
		n2 := js.Client(t, "n2")
		js.Call(t, map[string]any{"cmd": "join", "id": n1, "room": "nr"})
		js.Call(t, map[string]any{"cmd": "join", "id": n2, "room": "nr"})
		waitShardCount(t, g.rdb, "socket.io#/#nr#", 1) // Node.js subscribed to the room's channel
		if _, err := g.ns().To("nr").Except(n2).Emit("to-nr", []byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		if got := js.ClientEvent(t, "n1", "to-nr"); got != `[{"$bin":"0102"}]` {
			t.Fatalf("Node.js client got %s", got)
		}
		if _, err := g.ns().Emit("marker-go"); err != nil {
			t.Fatal(err)
		}
		js.ClientEvent(t, "n2", "marker-go")
		noClientEvent(t, js, "n2", "to-nr")
		expect(t, gc1, `42["marker-go"]`)
		expect(t, gc2, `42["marker-go"]`)
		js.Call(t, map[string]any{"cmd": "disconnectSockets", "rooms": []string{n2}})
		js.Expect(t, "n2 to go", func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == n2
		})
		js.Call(t, map[string]any{"cmd": "leave", "id": n1, "room": "nr"})
		waitShardCount(t, g.rdb, "socket.io#/#nr#", 0)
	})

	t.Run("fetchSockets both ways", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "join", "id": n1, "room": "r"})
		all := fetchSockets(t, js, map[string]any{})
		if len(all) != 3 {
			t.Fatalf("Node.js fetchSockets = %v, want 3 sockets", all)
		}
		s1 := all[sid1]
		if !slices.Equal(s1.Rooms, sortedCopy([]string{sid1, "r"})) {
			t.Fatalf("siobridge socket as Node.js sees it: %+v", s1)
		}
		if q, _ := s1.Handshake["query"].(map[string]any); q["transport"] != "websocket" || s1.Handshake["address"] != "127.0.0.1" {
			t.Fatalf("siobridge handshake as Node.js sees it: %v", s1.Handshake)
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
		rooms, _, err := g.ns().Rooms(ctx)
		if err != nil || !slices.Equal(rooms, []socketio.RoomInfo{{Name: "r", Sockets: 3}}) {
			t.Fatalf("Rooms = %+v, %v", rooms, err)
		}
	})

	t.Run("Node.js emitWithAck gathers siobridge acks, binary included", func(t *testing.T) {
		seq := js.Send(t, map[string]any{"cmd": "emitWithAck", "rooms": []string{"r"}, "event": "ask", "args": []any{7}, "timeout": 5000})
		for i, c := range []*socketiotest.Client{gc1, gc2} {
			msg := c.Read()
			id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["ask",7]`)
			if !ok || id == "" {
				t.Fatalf("siobridge client got %q", msg)
			}
			if i == 0 {
				c.Write(fmt.Sprintf(`461-%s[{"_placeholder":true,"num":0}]`, id))
				c.WriteBinary([]byte{0xbe, 0xef})
			} else {
				c.Write(fmt.Sprintf(`43%s["yes-go"]`, id))
			}
		}
		var responses []any
		if err := json.Unmarshal(js.Reply(t, seq)["responses"], &responses); err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, r := range responses {
			b, _ := json.Marshal(r)
			got = append(got, string(b))
		}
		slices.Sort(got)
		if want := []string{`"ack from n1"`, `"yes-go"`, `{"$bin":"beef"}`}; !slices.Equal(got, want) {
			t.Fatalf("Node.js emitWithAck responses %v, want %v", got, want)
		}
	})

	t.Run("siobridge EmitWithAck gathers a Node.js client's ack", func(t *testing.T) {
		ackCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := g.ns().To(n1).EmitWithAck(ackCtx, "ask-node", 5)
		if err != nil || res.Sockets != 1 || len(res.Acks) != 1 || string(res.Acks[0].Args.Raw) != `["ack from n1"]` {
			t.Fatalf("EmitWithAck = %+v, %v", res, err)
		}
		if res.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("EmitWithAck reach = %+v", res.Reach)
		}
		if got := js.ClientEvent(t, "n1", "ask-node"); got != `[5]` {
			t.Fatalf("Node.js client got %s", got)
		}
	})

	t.Run("siobridge counts include the Node.js server's sockets", func(t *testing.T) {
		n3 := js.Client(t, "n3")
		counted := func(what string, want int, call func(ctx context.Context) (socketio.Reached, error)) {
			t.Helper()
			r, err := call(ctx)
			if err != nil || r.Total != want || r.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				t.Fatalf("%s = %+v, %v; want %d sockets on 2 nodes", what, r, err, want)
			}
		}
		// sid1, sid2 here; n1, n3 on the Node.js server.
		counted("EmitContext to all", 4, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().All().EmitContext(ctx, "counted")
		})
		expect(t, gc1, `42["counted"]`)
		expect(t, gc2, `42["counted"]`)
		js.ClientEvent(t, "n1", "counted")
		js.ClientEvent(t, "n3", "counted")
		counted("SocketsJoin of n1", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To(n1).SocketsJoin(ctx, "go-joined")
		})
		testkit.Poll(t, 5*time.Second, "the Node.js socket to join", func() bool {
			return slices.Contains(fetchSockets(t, js, map[string]any{"rooms": []string{n1}})[n1].Rooms, "go-joined")
		})
		counted("SocketsLeave of go-joined", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("go-joined").SocketsLeave(ctx, "go-joined")
		})
		counted("DisconnectSockets of n3", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To(n3).DisconnectSockets(ctx, false)
		})
		js.Expect(t, "the Node.js server to disconnect n3", func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == n3
		})
	})

	t.Run("Node.js socketsJoin and disconnectSockets act on siobridge sockets", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "socketsJoin", "rooms": []string{sid2}, "join": "joined-by-node"})
		testkit.Poll(t, 5*time.Second, "the remote join", func() bool {
			return slices.Contains(g.socket(sid2).Rooms(), "joined-by-node")
		})
		js.Call(t, map[string]any{"cmd": "disconnectSockets", "rooms": []string{sid1}, "close": true})
		gc1.ExpectClosed()
		testkit.Poll(t, 5*time.Second, "sid1 to leave", func() bool { return g.ns().Socket(sid1) == nil })
	})
}
