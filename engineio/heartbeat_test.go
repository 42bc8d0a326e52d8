package engineio

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestSharedHeartbeat: with one timer for every session, each session is still pinged on its
// own schedule: of 20 WebSocket clients, those that answer pings stay connected through several
// intervals and those that do not are closed with "ping timeout", each on its own.
func TestSharedHeartbeat(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	const n = 20
	silent := map[string]bool{}
	answering := make([]*websocket.Conn, 0, n/2)
	for i := range n {
		c := dialWS(t, ts, "")
		_, open := readWS(t, c)
		sid := parseOpen(t, open).SID
		if i%2 == 0 {
			silent[sid] = true
			continue
		}
		answering = append(answering, c)
	}
	// Each answering client answers 6 pings (about 300 ms: several deadlines of the others).
	for round := range 6 {
		for i, c := range answering {
			if _, msg := readWS(t, c); msg != "2" {
				t.Fatalf("client %d, round %d: want a ping, got %q", i, round, msg)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range n / 2 {
		ev := ts.waitClose(t)
		if !silent[ev.sid] || ev.reason != ReasonPingTimeout {
			t.Fatalf("close %+v: want only the silent clients closed, with ping timeout", ev)
		}
		delete(silent, ev.sid)
	}
	if got := ts.eio.Len(); got != n/2 {
		t.Fatalf("%d sessions open, want the %d answering ones", got, n/2)
	}
}
