//go:build linux

package engineio

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Cases of the official Engine.IO test suite (test-suite/test-suite.js in
// socketio/engine.io-protocol), which Node's engine.io passes, over raw HTTP and WebSocket,
// on each way the server serves polls.

// pollPaths are the ways a server serves polls: held by the epoller (siobridge's default),
// waiting in their net/http handlers beside the WebSocket poller (polling_poller = false),
// and without an epoller at all (as on other systems).
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

// A WebSocket opened with the sid of a session that is upgrading to WebSocket, or is on it
// already, completes its handshake and is closed by the server ("upgrade / ignores WebSocket
// connection with same sid after upgrade"); the session goes on over its own WebSocket.
func TestSecondWebSocketIsClosedAndSessionGoesOn(t *testing.T) {
	for _, pp := range pollPaths {
		t.Run(pp.name, func(t *testing.T) {
			opts := pp.opts
			opts.PingInterval, opts.PingTimeout = time.Minute, time.Minute // no ping among the echoes
			ts := newTestServerHold(t, opts, 16, pp.hold)
			c := dialRaw(t, ts)
			sid := rawHandshake(t, c)
			q := "transport=polling&sid=" + sid
			c.send(getReq(q))
			waitPending(t, ts.eio.Session(sid), pp.hold)

			ws := dialWS(t, ts, "sid="+sid)
			writeWS(t, ws, websocket.TextMessage, "2probe")
			if _, msg := readWS(t, ws); msg != "3probe" {
				t.Fatalf("probe answer %q, want 3probe", msg)
			}
			if resp, body := c.read(); resp.StatusCode != 200 || body != "6" {
				t.Fatalf("the GET pending at the probe: %d %q, want 200 \"6\"", resp.StatusCode, body)
			}
			// Mid-upgrade, on the connection that polled: on "held", the epoller holds it and
			// gives it back to net/http for the WebSocket.
			if pp.hold {
				waitHeld(t, ts.eio, 1)
			}
			checkWebSocketClosedAfterHandshake(t, ts, sid, c.nc)
			waitHeld(t, ts.eio, 0)

			writeWS(t, ws, websocket.TextMessage, "5")
			writeWS(t, ws, websocket.TextMessage, "4before")
			if _, msg := readWS(t, ws); msg != "4before" {
				t.Fatalf("echo over the upgraded WebSocket: %q", msg)
			}
			// After the upgrade, on a connection of its own, as the suite opens it.
			checkWebSocketClosedAfterHandshake(t, ts, sid, nil)

			writeWS(t, ws, websocket.TextMessage, "4after")
			if _, msg := readWS(t, ws); msg != "4after" {
				t.Fatalf("echo after the second WebSocket: %q", msg)
			}
			if sess := ts.eio.Session(sid); sess == nil || sess.Transport() != TransportWebSocket {
				t.Fatalf("the session after the second WebSocket: %v, want it open on websocket", sess)
			}
			select {
			case ev := <-ts.closed:
				t.Fatalf("a session closed: %+v", ev)
			default:
			}
			if got := strings.Join(ts.received(), ","); got != "before,after" {
				t.Fatalf("server received %q, want before,after", got)
			}
		})
	}
}

// checkWebSocketClosedAfterHandshake opens a WebSocket with sid, over nc when it is not nil,
// and checks what Node's engine.io does with one it does not take: the handshake completes,
// then the server sends a close frame without status code (the client sees 1005), and
// closes the connection once the client has answered it.
func checkWebSocketClosedAfterHandshake(t *testing.T, ts *testServer, sid string, nc net.Conn) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if nc != nil {
		d.NetDialContext = func(context.Context, string, string) (net.Conn, error) { return nc, nil }
	}
	u := "ws" + strings.TrimPrefix(ts.url("transport=websocket&sid="+sid), "http")
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("second WebSocket: %v (HTTP %d), want its handshake to complete", err, status)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNoStatusReceived {
		t.Fatalf("second WebSocket: read %q, %v; want a close frame without status code (1005)", msg, err)
	}
	// gorilla has answered the close frame: the server closes the connection.
	_ = conn.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.NetConn().Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("second WebSocket after the close handshake: %d bytes, %v; want EOF", n, err)
	}
}
