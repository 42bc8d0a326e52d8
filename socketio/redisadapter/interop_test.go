package redisadapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// nodeDir holds the pinned Node.js packages of the interop tests (npm ci there).
const nodeDir = "testdata/node"

const nodeInstallHint = "install them with `make deps` (npm ci in socketio/redisadapter/testdata/node)"

// nodeJS is testdata/node/cluster.js: a Node.js Socket.IO server with @socket.io/redis-adapter
// on the test's Redis, driven by JSON lines.
type nodeJS struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan map[string]json.RawMessage
	quit    chan struct{}
	readers sync.WaitGroup
	backlog []map[string]json.RawMessage
	seq     int
	port    int

	mu     sync.Mutex
	stderr bytes.Buffer
}

func startNodeJS(t *testing.T, r *redisServer) *nodeJS {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: %v; %s", err, nodeInstallHint)
	}
	for _, pkg := range []string{"socket.io", "@socket.io/redis-adapter", "@socket.io/redis-emitter", "redis", "socket.io-client"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the Node.js package %s is missing: %v; %s", pkg, err, nodeInstallHint)
		}
	}
	js := &nodeJS{t: t, lines: make(chan map[string]json.RawMessage, 256), quit: make(chan struct{})}
	js.cmd = exec.Command("node", "cluster.js")
	js.cmd.Dir = nodeDir
	js.cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+r.addr(), "REQUESTS_TIMEOUT=5000")
	stdout, err := js.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if js.stdin, err = js.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	js.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		js.mu.Lock()
		defer js.mu.Unlock()
		return js.stderr.Write(p)
	})
	if err := js.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	js.readers.Add(1)
	go func() {
		defer js.readers.Done()
		defer close(js.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			select {
			case js.lines <- m:
			case <-js.quit:
				return
			}
		}
	}()
	t.Cleanup(js.stop)
	ready := js.expect("the Node.js server to be ready", func(m map[string]json.RawMessage) bool { return kind(m) == "ready" })
	if err := json.Unmarshal(ready["port"], &js.port); err != nil {
		t.Fatalf("ready line without port: %v", ready)
	}
	return js
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (js *nodeJS) stop() {
	_ = js.stdin.Close() // cluster.js exits when stdin ends
	exited := make(chan struct{})
	go func() {
		_ = js.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = js.cmd.Process.Kill()
		<-exited
	}
	close(js.quit)
	js.readers.Wait()
}

func kind(m map[string]json.RawMessage) string {
	var s string
	_ = json.Unmarshal(m["type"], &s)
	return s
}

func (js *nodeJS) dump() string {
	js.mu.Lock()
	defer js.mu.Unlock()
	var b strings.Builder
	for _, m := range js.backlog {
		line, _ := json.Marshal(m)
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteString("stderr:\n")
	b.Write(js.stderr.Bytes())
	return b.String()
}

// expect returns the first line (kept back or new) that match accepts; other lines are kept
// for later. It fails the test after 10 seconds.
func (js *nodeJS) expect(what string, match func(map[string]json.RawMessage) bool) map[string]json.RawMessage {
	js.t.Helper()
	for i, m := range js.backlog {
		if match(m) {
			js.backlog = slices.Delete(js.backlog, i, i+1)
			return m
		}
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-js.lines:
			if !ok {
				js.t.Fatalf("the Node.js process ended while waiting for %s:\n%s", what, js.dump())
			}
			if kind(m) == "fatal" {
				js.t.Fatalf("the Node.js process failed: %s", m["message"])
			}
			if match(m) {
				return m
			}
			js.backlog = append(js.backlog, m)
		case <-timer.C:
			js.t.Fatalf("gave up waiting for %s; lines so far:\n%s", what, js.dump())
		}
	}
}

// send writes a command and returns its sequence number, for reply.
func (js *nodeJS) send(cmd map[string]any) int {
	js.t.Helper()
	js.seq++
	cmd["seq"] = js.seq
	b, _ := json.Marshal(cmd)
	if _, err := js.stdin.Write(append(b, '\n')); err != nil {
		js.t.Fatalf("write to node: %v", err)
	}
	return js.seq
}

// reply waits for the answer to command seq.
func (js *nodeJS) reply(seq int) map[string]json.RawMessage {
	js.t.Helper()
	want := fmt.Sprint(seq)
	m := js.expect("the reply to command "+want, func(m map[string]json.RawMessage) bool {
		return (kind(m) == "reply" || kind(m) == "error") && string(m["seq"]) == want
	})
	if kind(m) == "error" {
		js.t.Fatalf("node command %s failed: %s", want, m["message"])
	}
	return m
}

func (js *nodeJS) call(cmd map[string]any) map[string]json.RawMessage {
	js.t.Helper()
	return js.reply(js.send(cmd))
}

// clientEvent waits for the Node.js client name to get event, and returns its args as
// JSON.stringify wrote them (binary as {"$bin":hex}).
func (js *nodeJS) clientEvent(name, event string) string {
	js.t.Helper()
	m := js.expect(fmt.Sprintf("client %s to get %q", name, event), func(m map[string]json.RawMessage) bool {
		var n, e string
		_ = json.Unmarshal(m["name"], &n)
		_ = json.Unmarshal(m["event"], &e)
		return kind(m) == "client-event" && n == name && e == event
	})
	return string(m["args"])
}

type jsSocket struct {
	ID        string         `json:"id"`
	Rooms     []string       `json:"rooms"`
	Data      any            `json:"data"`
	Handshake map[string]any `json:"handshake"`
}

func (js *nodeJS) fetchSockets(cmd map[string]any) map[string]jsSocket {
	js.t.Helper()
	cmd["cmd"] = "fetchSockets"
	var list []jsSocket
	if err := json.Unmarshal(js.call(cmd)["sockets"], &list); err != nil {
		js.t.Fatal(err)
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
	r := startRedis(t)
	g := newNode(t, r, Options{RequestTimeout: 5 * time.Second})
	js := startNodeJS(t, r)
	gc1, sid1 := g.client()
	gc2, sid2 := g.client()
	var n1 struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(js.call(map[string]any{"cmd": "client", "name": "n1"})["id"], &n1.ID); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, g)
	waitFor(t, 10*time.Second, "both nodes to subscribe", func() bool {
		all, siobridge, err := g.adapter().nodeCounts(context.Background())
		return err == nil && all == 2 && siobridge == 1
	})
	ctx := ctxTimeout(t, 30*time.Second)

	t.Run("siobridge emit reaches Node.js clients", func(t *testing.T) {
		if _, err := g.ns().Emit("from-go", 1, 2.5, "s", map[string]any{"k": []byte{9}}, nil, json.RawMessage(`{"b":1e3,"a":-0.5}`)); err != nil {
			t.Fatal(err)
		}
		if got, want := js.clientEvent("n1", "from-go"), `[1,2.5,"s",{"k":{"$bin":"09"}},null,{"b":1000,"a":-0.5}]`; got != want {
			t.Fatalf("Node.js client got %s, want %s", got, want)
		}
		for _, c := range []*socketiotest.Client{gc1, gc2} {
			expect(t, c, `451-["from-go",1,2.5,"s",{"k":{"_placeholder":true,"num":0}},null,{"b":1e3,"a":-0.5}]`)
			expect(t, c, "bin:\x09")
		}
	})

	t.Run("Node.js room emit reaches siobridge clients in the room", func(t *testing.T) {
		g.socket(sid1).Join("r")
		js.call(map[string]any{"cmd": "emit", "rooms": []string{"r"}, "event": "from-node",
			"args": []any{map[string]any{"x": 1, "y": []any{true, nil}}, map[string]string{"$bin": "0a0b"}, 3.25, "é\u2028"}})
		expect(t, gc1, `451-["from-node",{"x":1,"y":[true,null]},{"_placeholder":true,"num":0},3.25,"é\u2028"]`)
		expect(t, gc1, "bin:\x0a\x0b")
		js.call(map[string]any{"cmd": "emit", "event": "marker-node"})
		expect(t, gc1, `42["marker-node"]`)
		expect(t, gc2, `42["marker-node"]`)
		js.clientEvent("n1", "marker-node")
	})

	t.Run("Node.js fetchSockets includes siobridge sockets", func(t *testing.T) {
		all := js.fetchSockets(map[string]any{})
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
		inRoom := js.fetchSockets(map[string]any{"rooms": []string{"r"}})
		if len(inRoom) != 1 || inRoom[sid1].ID != sid1 {
			t.Fatalf("fetchSockets(r) = %v", inRoom)
		}
	})

	t.Run("siobridge FetchSockets and Rooms include Node.js sockets", func(t *testing.T) {
		js.call(map[string]any{"cmd": "join", "id": n1.ID, "room": "r"})
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
		_ = json.Unmarshal(js.call(map[string]any{"cmd": "allRooms"})["rooms"], &jsRooms)
		if want := sortedCopy([]string{"r", sid1, sid2, n1.ID}); !slices.Equal(jsRooms, want) {
			t.Fatalf("Node.js allRooms = %v, want %v", jsRooms, want)
		}
	})

	t.Run("emitter emit to a room with except", func(t *testing.T) {
		g.socket(sid2).Join("r")
		js.call(map[string]any{"cmd": "emitter", "action": "emit", "rooms": []string{"r"}, "except": []string{sid2},
			"event": "from-emitter", "args": []any{1, map[string]string{"$bin": "ff"}}})
		expect(t, gc1, `451-["from-emitter",1,{"_placeholder":true,"num":0}]`)
		expect(t, gc1, "bin:\xff")
		if got := js.clientEvent("n1", "from-emitter"); got != `[1,{"$bin":"ff"}]` {
			t.Fatalf("Node.js client got %s", got)
		}
		js.call(map[string]any{"cmd": "emitter", "action": "emit", "event": "marker-emitter"})
		expect(t, gc2, `42["marker-emitter"]`)
		expect(t, gc1, `42["marker-emitter"]`)
	})

	t.Run("Node.js and emitter socketsJoin, socketsLeave on siobridge sockets", func(t *testing.T) {
		js.call(map[string]any{"cmd": "socketsJoin", "rooms": []string{sid2}, "join": "joined-by-node"})
		js.call(map[string]any{"cmd": "emitter", "action": "socketsJoin", "rooms": []string{sid1}, "join": []string{"joined-by-emitter", "x"}})
		waitFor(t, 5*time.Second, "the remote joins", func() bool {
			return slices.Contains(g.ns().Socket(sid2).Rooms(), "joined-by-node") &&
				slices.Contains(g.ns().Socket(sid1).Rooms(), "joined-by-emitter") &&
				slices.Contains(g.ns().Socket(sid1).Rooms(), "x")
		})
		js.call(map[string]any{"cmd": "emitter", "action": "socketsLeave", "rooms": []string{"x"}, "leave": "x"})
		waitFor(t, 5*time.Second, "the remote leave", func() bool {
			return !slices.Contains(g.ns().Socket(sid1).Rooms(), "x")
		})
	})

	t.Run("Node.js emitWithAck gathers siobridge acks", func(t *testing.T) {
		seq := js.send(map[string]any{"cmd": "emitWithAck", "rooms": []string{"r"}, "event": "ask", "args": []any{7}, "timeout": 5000})
		for i, c := range []*socketiotest.Client{gc1, gc2} {
			msg := c.Read()
			id, ok := strings.CutSuffix(strings.TrimPrefix(msg, "42"), `["ask",7]`)
			if !ok || id == "" {
				t.Fatalf("siobridge client got %q", msg)
			}
			c.Write(fmt.Sprintf(`43%s["yes-go-%d",{"more":true}]`, id, i))
		}
		var responses []any
		if err := json.Unmarshal(js.reply(seq)["responses"], &responses); err != nil {
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
		if got := js.clientEvent("n1", "ask-node"); got != `[5]` {
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
		waitFor(t, 5*time.Second, "the Node.js socket to join", func() bool {
			return slices.Contains(js.fetchSockets(map[string]any{"rooms": []string{n1.ID}})[n1.ID].Rooms, "go-joined")
		})
	})

	t.Run("siobridge counts include the Node.js server's sockets", func(t *testing.T) {
		var n2 string
		if err := json.Unmarshal(js.call(map[string]any{"cmd": "client", "name": "n2"})["id"], &n2); err != nil {
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
		js.clientEvent("n1", "counted")
		js.clientEvent("n2", "counted")
		// In r: sid1, sid2 and n1; sid2 left out.
		counted("EmitContext to r except sid2", 2, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("r").Except(sid2).EmitContext(ctx, "to-r")
		})
		expect(t, gc1, `42["to-r"]`)
		js.clientEvent("n1", "to-r")
		counted("SocketsLeave of go-joined", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("go-joined").SocketsLeave(ctx, "go-joined")
		})
		counted("SocketsLeave of go-joined again", 0, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To("go-joined").SocketsLeave(ctx, "go-joined")
		})
		counted("DisconnectSockets of n2", 1, func(ctx context.Context) (socketio.Reached, error) {
			return g.ns().To(n2).DisconnectSockets(ctx, false)
		})
		js.expect("the Node.js server to disconnect n2", func(m map[string]json.RawMessage) bool {
			var id string
			_ = json.Unmarshal(m["id"], &id)
			return kind(m) == "server-disconnect" && id == n2
		})
	})

	t.Run("emitter and Node.js disconnect siobridge sockets", func(t *testing.T) {
		js.call(map[string]any{"cmd": "emitter", "action": "disconnectSockets", "rooms": []string{sid2}})
		readUntil(t, gc2, "41", 5)
		js.call(map[string]any{"cmd": "disconnectSockets", "rooms": []string{sid1}, "close": true})
		gc1.ExpectClosed()
		waitFor(t, 5*time.Second, "the sockets to leave", func() bool { return g.ns().Len() == 0 })
	})
}
