package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/internal/testkit"
)

// TestE2ERecovery: connection state recovery through the binary. A socket.io-client whose
// transport drops misses two events sent through POST /emit (to its room, and to its id);
// reconnecting, it gets its socket back (socket.recovered, the same id) and both events in
// order, then new ones. The app sees the disconnect, then a connect with "recovered": true and
// the socket's former rooms and data.
func TestE2ERecovery(t *testing.T) {
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		if d.Kind == "connect" && !d.Payload.Recovered {
			return http.StatusOK, map[string]any{"join": []string{"lobby"}, "data": map[string]string{"user": "bob"}}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_RECOVERY=1m")
	nc := startNode(t)
	c := nc.connect(t, b.url(), map[string]any{"transports": []string{"websocket"}})

	b.emit(t, map[string]any{"event": "news", "args": []any{1}, "to": []string{"lobby"}}, 1)
	if m := c.expectEvent(t, "news"); !hasOffset(m.Args, "1") {
		t.Fatalf("news 1 arrived as %s: want 1 and an offset", m.Args)
	}

	nc.send(t, map[string]any{"op": "cut", "client": c.n})
	if m := c.next(t); m.Type != "disconnect" {
		t.Fatalf("got %s, want the client's disconnect", m.line)
	}
	a.waitFor(t, "the disconnect webhook", func(d delivery) bool {
		return d.Kind == "disconnect" && d.Payload.Socket.ID == c.id && d.Payload.Reason == "transport close"
	})
	b.emit(t, map[string]any{"event": "news", "args": []any{2}, "to": []string{"lobby"}}, 0)
	b.emit(t, map[string]any{"event": "news", "args": []any{3}, "to": []string{c.id}}, 0)

	nc.send(t, map[string]any{"op": "reconnect", "client": c.n})
	if m := c.next(t); m.Type != "connect" || m.ID != c.id || !m.Recovered {
		t.Fatalf("got %s, want a recovered connect as %s", m.line, c.id)
	}
	for _, want := range []string{"2", "3"} {
		if m := c.expectEvent(t, "news"); !hasOffset(m.Args, want) {
			t.Fatalf("replayed news %s arrived as %s", want, m.Args)
		}
	}
	b.emit(t, map[string]any{"event": "news", "args": []any{4}, "to": []string{"lobby"}}, 1)
	if m := c.expectEvent(t, "news"); !hasOffset(m.Args, "4") {
		t.Fatalf("news 4 arrived as %s", m.Args)
	}

	d := a.waitFor(t, "the recovered connect webhook", func(d delivery) bool {
		return d.Kind == "connect" && d.Payload.Recovered
	})
	if d.Payload.Socket.ID != c.id || !slices.Contains(d.Payload.Socket.Rooms, "lobby") ||
		string(d.Payload.Socket.Data) != `{"user":"bob"}` || strings.Contains(string(d.Payload.Socket.Handshake.Auth), "pid") {
		t.Fatalf("recovered connect webhook: %+v, auth %s", d.Payload.Socket, d.Payload.Socket.Handshake.Auth)
	}
	if s, ok := b.sockets(t, "lobby")[c.id]; !ok || string(s.Data) != `{"user":"bob"}` {
		t.Fatalf("GET /sockets?room=lobby: %v", b.sockets(t, "lobby"))
	}
}

// hasOffset reports whether args is [want, "<offset>"].
func hasOffset(args json.RawMessage, want string) bool {
	var arr []json.RawMessage
	var offset string
	return json.Unmarshal(args, &arr) == nil && len(arr) == 2 && string(arr[0]) == want &&
		json.Unmarshal(arr[1], &offset) == nil && offset != ""
}

// TestE2ERecoveryRefusedWithRedis: recovery works on a single node or with the streams
// adapter, not with the pub/sub one, and the binary says so and names the way.
func TestE2ERecoveryRefusedWithRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.StartWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, siobridge.Path(t))
	cmd.Env = testkit.Env("SIOBRIDGE_CONFIG=", "SIOBRIDGE_SOCKETIO_RECOVERY=2m", "SIOBRIDGE_CLUSTER_ADAPTER=redis",
		"SIOBRIDGE_SERVER_LISTEN=127.0.0.1:0", "SIOBRIDGE_API_LISTEN=127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("siobridge started with recovery on Redis:\n%s", out)
	}
	if !strings.Contains(string(out), `config: socketio.recovery: connection state recovery works on a single node (cluster.adapter = "memory") or across nodes with cluster.adapter = "redis-streams", not with "redis"`) {
		t.Fatalf("siobridge's error does not say why:\n%s", out)
	}
}
