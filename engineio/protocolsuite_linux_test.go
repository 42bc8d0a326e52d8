//go:build linux

package engineio

import (
	"strings"
	"testing"
)

// Cases of the official Engine.IO test suite (test-suite/test-suite.js in
// socketio/engine.io-protocol), which Node's engine.io passes, over raw HTTP and WebSocket,
// on each way the server serves polls.

// pollPaths are the ways a server serves polls: held by the poller (siobridge's default),
// waiting in their net/http handlers beside the WebSocket poller (polling_poller = false),
// and without a poller at all (as on other systems).
var pollPaths = []struct {
	name string
	hold bool
	opts Options
}{
	{"held", true, Options{}},
	{"handler", false, Options{}},
	{"nopoller", false, Options{DisableWebSocketPoller: true}},
}

// The client's close packet ends the session, and the GET it left pending is answered with a
// noop, not a close packet ("close / HTTP long-polling / forcefully closes the session"); the
// next GET is refused.
func TestPollClientCloseReleasesPendingGET(t *testing.T) {
	for _, pp := range pollPaths {
		t.Run(pp.name, func(t *testing.T) {
			ts := newTestServerHold(t, pp.opts, 16, pp.hold)
			c := dialRaw(t, ts)
			sid := rawHandshake(t, c)
			q := "transport=polling&sid=" + sid
			c.send(getReq(q))
			waitPending(t, ts.eio.Session(sid), pp.hold)

			other := dialRaw(t, ts)
			if resp, body := other.roundTrip(postReq(q, "1")); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("POST of the close packet: %d %q, want 200 \"ok\"", resp.StatusCode, body)
			}
			if resp, body := c.read(); resp.StatusCode != 200 || body != "6" {
				t.Fatalf("the pending GET: %d %q, want 200 \"6\" (a noop)", resp.StatusCode, body)
			}
			if ev := ts.waitClose(t); ev.reason != ReasonTransportClose || ev.err != nil {
				t.Fatalf("close %q %v, want %q without error", ev.reason, ev.err, ReasonTransportClose)
			}
			if resp, body := c.roundTrip(getReq(q)); resp.StatusCode != 400 || !strings.Contains(body, `"code":1`) {
				t.Fatalf("the next GET: %d %q, want 400 with code 1 (Session ID unknown)", resp.StatusCode, body)
			}
		})
	}
}
