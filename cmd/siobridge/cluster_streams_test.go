package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// TestClusterStreamsRecovery: with cluster.adapter = "redis-streams" and socketio.recovery
// on, a client of node A whose connection drops comes back on node B: its CONNECT is answered
// with its former id, it gets the events emitted meanwhile (through A's API and B's) in order
// with their offsets, then new ones, and B's connect webhook says "recovered": true with the
// socket's rooms and data, which the app set on A.
func TestClusterStreamsRecovery(t *testing.T) {
	bin := siobridge.Path(t)
	r := testkit.StartRedis(t)
	app := clusterStartApp(t)
	app.setReply(func(d clusterDelivery) any {
		if d.Kind == "connect" && !d.Payload.Recovered {
			return map[string]any{"join": []string{"lobby"}, "data": map[string]string{"user": "bob"}}
		}
		return nil
	})
	nodes := clusterStartNodes(t, bin, r, app, []string{"A", "B"},
		"SIOBRIDGE_CLUSTER_ADAPTER=redis-streams", "SIOBRIDGE_SOCKETIO_RECOVERY=1m")
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.AwaitReady(t, clusterWait, http.StatusOK)
	}
	testkit.Poll(t, clusterWait, "A and B to count each other", func() bool {
		_, ra := a.socketsReach(t)
		_, rb := b.socketsReach(t)
		return ra.Nodes == 2 && rb.Nodes == 2
	})

	c := socketiotest.Dial(t, "http://"+a.Public, "")
	first := streamsConnect(t, c, "")
	app.waitFor(t, "the connect webhook from A", func(d clusterDelivery) bool {
		return d.Kind == "connect" && d.Node == "A" && d.Payload.Socket.ID == first["sid"]
	})
	testkit.Poll(t, clusterWait, "the socket to join lobby", func() bool {
		_, ok := a.sockets(t, "lobby")[first["sid"]]
		return ok
	})
	a.emit(t, `{"event":"news","args":[1],"to":["lobby"]}`, 1)
	offset := streamsEventOffset(t, c, "1")

	_ = c.Conn.Close()
	app.waitFor(t, "the disconnect webhook", func(d clusterDelivery) bool {
		return d.Kind == "disconnect" && d.Payload.Socket.ID == first["sid"]
	})
	a.emit(t, `{"event":"news","args":[2],"to":["lobby"]}`, 0)
	// B's emit comes after A's in the stream: B publishes it once A has answered B's count
	// request, which A wrote to the stream after its emit.
	b.emit(t, fmt.Sprintf(`{"event":"news","args":[3],"to":[%q]}`, first["sid"]), 0)

	c2 := socketiotest.Dial(t, "http://"+b.Public, "")
	again := streamsConnect(t, c2, fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offset))
	if again["sid"] != first["sid"] || again["pid"] != first["pid"] {
		t.Fatalf("CONNECT on B answered %v; was %v on A", again, first)
	}
	streamsEventOffset(t, c2, "2")
	streamsEventOffset(t, c2, "3")
	a.emit(t, `{"event":"news","args":[4],"to":["lobby"]}`, 1)
	streamsEventOffset(t, c2, "4")

	d := app.waitFor(t, "the recovered connect webhook from B", func(d clusterDelivery) bool {
		return d.Kind == "connect" && d.Payload.Recovered
	})
	if d.Node != "B" || d.Payload.Socket.ID != first["sid"] || !slices.Contains(d.Payload.Socket.Rooms, "lobby") ||
		string(d.Payload.Socket.Data) != `{"user":"bob"}` || strings.Contains(string(d.Payload.Socket.Handshake.Auth), "pid") {
		t.Fatalf("recovered connect webhook from %s: %+v, auth %s", d.Node, d.Payload.Socket, d.Payload.Socket.Handshake.Auth)
	}
}

// streamsConnect sends a CONNECT to "/" with auth and returns the answer's fields (sid, pid).
func streamsConnect(t *testing.T, c *socketiotest.Client, auth string) map[string]string {
	t.Helper()
	c.Write("40" + auth)
	reply := c.Read()
	var body map[string]string
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &body) != nil || body["pid"] == "" {
		t.Fatalf("CONNECT answer %q", reply)
	}
	return body
}

// streamsEventOffset reads the next message, which must be news with first argument want and
// an offset, and returns the offset.
func streamsEventOffset(t *testing.T, c *socketiotest.Client, want string) string {
	t.Helper()
	msg := c.Read()
	var arr []json.RawMessage
	var offset string
	if !strings.HasPrefix(msg, "42[") || json.Unmarshal([]byte(msg[2:]), &arr) != nil || len(arr) != 3 ||
		string(arr[0]) != `"news"` || string(arr[1]) != want || json.Unmarshal(arr[2], &offset) != nil || offset == "" {
		t.Fatalf("got %q, want news %s with an offset", msg, want)
	}
	return offset
}
