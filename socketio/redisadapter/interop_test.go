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

type jsSocket struct {
	ID        string         `json:"id"`
	Rooms     []string       `json:"rooms"`
	Data      any            `json:"data"`
	Handshake map[string]any `json:"handshake"`
}

// fetchSockets is the Node.js server's fetchSockets, by socket id.
func fetchSockets(t *testing.T, js *testkit.NodeServer, cmd map[string]any) map[string]jsSocket {
	t.Helper()
	cmd["cmd"] = "fetchSockets"
	var list []jsSocket
	if err := json.Unmarshal(js.Call(t, cmd)["sockets"], &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]jsSocket{}
	for _, s := range list {
		out[s.ID] = s
	}
	return out
}

// TestNodeJSInterop runs a siobridge node and a Node.js Socket.IO server (socket.io 4.8 with
// @socket.io/redis-adapter 8.3) in one cluster, plus @socket.io/redis-emitter 5.1.
func TestNodeJSInterop(t *testing.T) {
	testkit.RequireNodeServer(t)
	r := testkit.StartRedis(t)
	g := newNode(t, r, Options{RequestTimeout: 5 * time.Second})
	js := testkit.StartNodeServer(t, r.URL(), 5*time.Second)
	gc1, sid1 := g.client()
	gc2, sid2 := g.client()
	var n1 struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(js.Call(t, map[string]any{"cmd": "client", "name": "n1"})["id"], &n1.ID); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, g)
	testkit.Poll(t, 10*time.Second, "both nodes to subscribe", func() bool {
		all, siobridge, err := g.adapter().nodeCounts(context.Background())
		return err == nil && all == 2 && siobridge == 1
	})
	ctx := ctxTimeout(t, 30*time.Second)

	t.Run("siobridge emit reaches Node.js clients", func(t *testing.T) {
		if _, err := g.ns().Emit("from-go", 1, 2.5, "s", map[string]any{"k": []byte{9}}, nil, json.RawMessage(`{"b":1e3,"a":-0.5}`)); err != nil {
			t.Fatal(err)
		}
		if got, want := js.ClientEvent(t, "n1", "from-go"), `[1,2.5,"s",{"k":{"$bin":"09"}},null,{"b":1000,"a":-0.5}]`; got != want {
			t.Fatalf("Node.js client got %s, want %s", got, want)
		}
		for _, c := range []*socketiotest.Client{gc1, gc2} {
			expect(t, c, `451-["from-go",1,2.5,"s",{"k":{"_placeholder":true,"num":0}},null,{"b":1e3,"a":-0.5}]`)
			expect(t, c, "bin:\x09")
		}
	})

	t.Run("Node.js room emit reaches siobridge clients in the room", func(t *testing.T) {
		g.socket(sid1).Join("r")
		js.Call(t, map[string]any{"cmd": "emit", "rooms": []string{"r"}, "event": "from-node",
			"args": []any{map[string]any{"x": 1, "y": []any{true, nil}}, map[string]string{"$bin": "0a0b"}, 3.25, "é\u2028"}})
		expect(t, gc1, `451-["from-node",{"x":1,"y":[true,null]},{"_placeholder":true,"num":0},3.25,"é\u2028"]`)
		expect(t, gc1, "bin:\x0a\x0b")
		js.Call(t, map[string]any{"cmd": "emit", "event": "marker-node"})
		expect(t, gc1, `42["marker-node"]`)
		expect(t, gc2, `42["marker-node"]`)
		js.ClientEvent(t, "n1", "marker-node")
	})

	t.Run("Node.js fetchSockets includes siobridge sockets", func(t *testing.T) {
		all := fetchSockets(t, js, map[string]any{})
		if len(all) != 3 {
			t.Fatalf("fetchSockets = %v, want 3 sockets", all)
		}
		s1, ok := all[sid1]
		if !ok || !slices.Equal(s1.Rooms, sortedCopy([]string{sid1, "r"})) {
			t.Fatalf("siobridge socket as Node.js sees it: %+v", s1)
		}
		if q, _ := s1.Handshake["query"].(map[string]any); q["transport"] != "websocket" || s1.Handshake["address"] != "127.0.0.1" {
			t.Fatalf("siobridge handshake as Node.js sees it: %v", s1.Handshake)
		}
		if _, ok := all[n1.ID]; !ok {
			t.Fatalf("the Node.js socket is missing: %v", all)
		}
		inRoom := fetchSockets(t, js, map[string]any{"rooms": []string{"r"}})
		if len(inRoom) != 1 || inRoom[sid1].ID != sid1 {
			t.Fatalf("fetchSockets(r) = %v", inRoom)
		}
	})

	t.Run("siobridge FetchSockets and Rooms include Node.js sockets", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "join", "id": n1.ID, "room": "r"})
		all, _, err := g.ns().All().FetchSockets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var remote *socketio.SocketInfo
		for i := range all {
			if all[i].ID == n1.ID {
				remote = &all[i]
			}
		}
		if len(all) != 3 || remote == nil {
			t.Fatalf("FetchSockets = %+v", all)
		}
		if !slices.Equal(remote.Rooms, sortedCopy([]string{n1.ID, "r"})) || remote.Handshake == nil || remote.Handshake.Query["EIO"] != "4" || remote.Handshake.Address == "" {
			t.Fatalf("Node.js socket as siobridge sees it: %+v %+v", remote, remote.Handshake)
		}
		rooms, _, err := g.adapter().Rooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []socketio.RoomInfo{{Name: "r", Sockets: 2}}; !slices.Equal(rooms, want) {
			t.Fatalf("Rooms = %+v, want %+v", rooms, want)
		}
		var jsRooms []string
		_ = json.Unmarshal(js.Call(t, map[string]any{"cmd": "allRooms"})["rooms"], &jsRooms)
		if want := sortedCopy([]string{"r", sid1, sid2, n1.ID}); !slices.Equal(jsRooms, want) {
			t.Fatalf("Node.js allRooms = %v, want %v", jsRooms, want)
		}
	})

	t.Run("emitter emit to a room with except", func(t *testing.T) {
		g.socket(sid2).Join("r")
		js.Call(t, map[string]any{"cmd": "emitter", "action": "emit", "rooms": []string{"r"}, "except": []string{sid2},
			"event": "from-emitter", "args": []any{1, map[string]string{"$bin": "ff"}}})
		expect(t, gc1, `451-["from-emitter",1,{"_placeholder":true,"num":0}]`)
		expect(t, gc1, "bin:\xff")
		if got := js.ClientEvent(t, "n1", "from-emitter"); got != `[1,{"$bin":"ff"}]` {
			t.Fatalf("Node.js client got %s", got)
		}
		js.Call(t, map[string]any{"cmd": "emitter", "action": "emit", "event": "marker-emitter"})
		expect(t, gc2, `42["marker-emitter"]`)
		expect(t, gc1, `42["marker-emitter"]`)
	})

	t.Run("Node.js and emitter socketsJoin, socketsLeave on siobridge sockets", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "socketsJoin", "rooms": []string{sid2}, "join": "joined-by-node"})
		js.Call(t, map[string]any{"cmd": "emitter", "action": "socketsJoin", "rooms": []string{sid1}, "join": []string{"joined-by-emitter", "x"}})
		testkit.Poll(t, 5*time.Second, "the remote joins", func() bool {
			return slices.Contains(g.ns().Socket(sid2).Rooms(), "joined-by-node") &&
				slices.Contains(g.ns().Socket(sid1).Rooms(), "joined-by-emitter") &&
				slices.Contains(g.ns().Socket(sid1).Rooms(), "x")
		})
		js.Call(t, map[string]any{"cmd": "emitter", "action": "socketsLeave", "rooms": []string{"x"}, "leave": "x"})
		testkit.Poll(t, 5*time.Second, "the remote leave", func() bool {
			return !slices.Contains(g.ns().Socket(sid1).Rooms(), "x")
		})
	})

	t.Run("Node.js emitWithAck gathers siobridge acks", func(t *testing.T) {
		seq := js.Send(t, map[string]any{"cmd": "emitWithAck", "rooms": []string{"r"}, "event": "ask", "args": []any{7}, "timeout": 5000})
		for i, c := range []*socketiotest.Client{gc1, gc2} {
			msg := c.Read()
			id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["ask",7]`)
			if !ok || id == "" {
				t.Fatalf("siobridge client got %q", msg)
			}
			c.Write(fmt.Sprintf(`43%s["yes-go-%d",{"more":true}]`, id, i))
		}
		var responses []any
		if err := json.Unmarshal(js.Reply(t, seq)["responses"], &responses); err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, r := range responses {
			got = append(got, fmt.Sprint(r))
		}
		slices.Sort(got)
		if want := []string{"ack from n1", "yes-go-0", "yes-go-1"}; !slices.Equal(got, want) {
			t.Fatalf("Node.js emitWithAck responses %v, want %v", got, want)
		}
	})

	t.Run("siobridge EmitWithAck gathers a Node.js client's ack", func(t *testing.T) {
		ackCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := g.ns().To(n1.ID).EmitWithAck(ackCtx, "ask-node", 5)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sockets != 1 || len(res.Acks) != 1 || string(res.Acks[0].Args.Raw) != `["ack from n1"]` {
			t.Fatalf("EmitWithAck = %+v", res)
		}
		if got := js.ClientEvent(t, "n1", "ask-node"); got != `[5]` {
			t.Fatalf("Node.js client got %s", got)
		}
	})

	t.Run("siobridge SocketsJoin on a Node.js socket", func(t *testing.T) {
		r, err := g.ns().To(n1.ID).SocketsJoin(ctx, "go-joined")
		if err != nil || r.Total != 1 {
			t.Fatalf("SocketsJoin = %d, %v; want 1, the Node.js socket", r.Total, err)
		}
		if r.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
			t.Fatalf("SocketsJoin: reach = %+v; want 2 nodes, 2 replied", r.Reach)
		}
		testkit.Poll(t, 5*time.Second, "the Node.js socket to join", func() bool {
			return slices.Contains(fetchSockets(t, js, map[string]any{"rooms": []string{n1.ID}})[n1.ID].Rooms, "go-joined")
		})
	})

	t.Run("siobridge counts include the Node.js server's sockets", func(t *testing.T) {
		var n2 string
		if err := json.Unmarshal(js.Call(t, map[string]any{"cmd": "client", "name": "n2"})["id"], &n2); err != nil {
			t.Fatal(err)
		}
		counted := func(what string, want int, call func(ctx context.Context) (socketio.Reached, error)) {
			t.Helper()
			r, err := call(ctx)
			if err != nil || r.Total != want {
				t.Fatalf("%s = %d, %v; want %d", what, r.Total, err, want)
			}
			if r.Reach != (socketio.Reach{Nodes: 2, Replied: 2}) {
				t.Fatalf("%s: reach = %+v; want 2 nodes, 2 replied", what, r.Reach)
			}
		}
		// sid1, sid2 here; n1, n2 on the Node.js server.
		counted("EmitContext to all", 4, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().All().EmitContext(ctx, "counted")
		})
		expect(t, gc1, `42["counted"]`)
		expect(t, gc2, `42["counted"]`)
		js.ClientEvent(t, "n1", "counted")
		js.ClientEvent(t, "n2", "counted")
		// In r: sid1, sid2 and n1; sid2 left out.
		counted("EmitContext to r except sid2", 2, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("r").Except(sid2).EmitContext(ctx, "to-r")
		})
		expect(t, gc1, `42["to-r"]`)
		js.ClientEvent(t, "n1", "to-r")
		counted("SocketsLeave of go-joined", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("go-joined").SocketsLeave(ctx, "go-joined")
		})
		counted("SocketsLeave of go-joined again", 0, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("go-joined").SocketsLeave(ctx, "go-joined")
		})
		counted("DisconnectSockets of n2", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To(n2).DisconnectSockets(ctx, false)
		})
		js.Expect(t, "the Node.js server to disconnect n2", func(m testkit.NodeMessage) bool {
			return m.Kind() == "server-disconnect" && m.Text("id") == n2
		})
	})

	t.Run("emitter and Node.js disconnect siobridge sockets", func(t *testing.T) {
		js.Call(t, map[string]any{"cmd": "emitter", "action": "disconnectSockets", "rooms": []string{sid2}})
		readUntil(t, gc2, "41", 5)
		js.Call(t, map[string]any{"cmd": "disconnectSockets", "rooms": []string{sid1}, "close": true})
		gc1.ExpectClosed()
		testkit.Poll(t, 5*time.Second, "the sockets to leave", func() bool { return g.ns().Len() == 0 })
	})
}
