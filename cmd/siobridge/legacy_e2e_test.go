package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestE2ELegacySwitch: with socketio.allow_eio3 off (the default), a socket.io-client 2.x
// handshake gets 400 "Unsupported protocol version" on polling, JSONP and WebSocket, and a 4.x
// client is served; with it on, the same handshakes open sessions.
func TestE2ELegacySwitch(t *testing.T) {
	t.Parallel()
	off := startBridge(t, nil)
	on := startBridge(t, nil, "SIOBRIDGE_SOCKETIO_ALLOW_EIO3=true")
	handshakes := map[string]string{
		"polling":          "EIO=3&transport=polling",
		"polling, no EIO":  "transport=polling",
		"JSONP":            "EIO=3&transport=polling&j=0",
		"polling with b64": "EIO=3&transport=polling&b64=1",
		"websocket":        "EIO=3&transport=websocket",
		"4.x client":       "EIO=4&transport=polling",
	}
	// JSONP is 2.x's alone: a 4.x one is refused without allow_eio3 (and served with it).
	if res, err := off.fetch(http.MethodGet, off.url()+"/socket.io/?EIO=4&transport=polling&j=1", nil, nil); err != nil || res.status != http.StatusBadRequest {
		t.Fatalf("allow_eio3 off: a 4.x JSONP handshake = %d %s, %v; want 400", res.status, res.body, err)
	}
	for name, query := range handshakes {
		t.Run(name, func(t *testing.T) {
			for _, b := range []*bridge{off, on} {
				u := off.url()
				if b == on {
					u = on.url()
				}
				u += "/socket.io/?" + query
				allowed := b == on || strings.HasPrefix(query, "EIO=4")
				if strings.Contains(query, "websocket") {
					ws, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(u, "http"), nil)
					if allowed {
						if err != nil {
							t.Fatalf("allow_eio3=%v: dial %s: %v", b == on, u, err)
						}
						ws.Close()
						continue
					}
					if err == nil {
						ws.Close()
						t.Fatalf("allow_eio3 off: the v3 WebSocket %s was opened", u)
					}
					if res == nil || res.StatusCode != http.StatusBadRequest {
						t.Fatalf("allow_eio3 off: dial %s: %v, %v; want 400", u, res, err)
					}
					continue
				}
				res, err := b.fetch(http.MethodGet, u, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !allowed {
					if res.status != http.StatusBadRequest || string(res.body) != `{"code":5,"message":"Unsupported protocol version"}` {
						t.Fatalf("allow_eio3 off: GET %s = %d %s; want 400 code 5", u, res.status, res.body)
					}
					continue
				}
				// JSONP wraps the payload in a script, its quotes escaped.
				if res.status != http.StatusOK || !strings.Contains(strings.ReplaceAll(string(res.body), `\"`, `"`), `"sid":"`) {
					t.Fatalf("allow_eio3=%v: GET %s = %d %s; want an open packet", b == on, u, res.status, res.body)
				}
			}
		})
	}
}

// TestE2ELegacyPolling drives a raw 2.x polling session through the binary: "/" is joined
// without a CONNECT, the connect webhook shows the client's Engine.IO id and EIO "3", an event
// reaches the app, and POST /emit reaches the client, all in v3's length-prefixed payloads.
func TestE2ELegacyPolling(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	b := startBridge(t, a, "SIOBRIDGE_SOCKETIO_ALLOW_EIO3=true")
	base := b.url() + "/socket.io/?EIO=3&transport=polling&b64=1"
	get := func(u string) string {
		t.Helper()
		res, err := b.fetch(http.MethodGet, u, nil, nil)
		if err != nil || res.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s, %v", u, res.status, res.body, err)
		}
		return string(res.body)
	}
	open := get(base)
	n, rest, ok := strings.Cut(open, ":")
	size, err := strconv.Atoi(n)
	if !ok || err != nil || size > len(rest) || !strings.HasPrefix(rest, "0{") {
		t.Fatalf("handshake answer %q, want <len>:0{...}", open)
	}
	// The open packet is ASCII: its UTF-16 length is its length in bytes.
	packet, after := rest[:size], rest[size:]
	var hs struct {
		SID        string `json:"sid"`
		MaxPayload *int   `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(packet[1:]), &hs); err != nil || hs.SID == "" || hs.MaxPayload != nil {
		t.Fatalf("open packet %q: %+v, %v; want a sid and no maxPayload", packet, hs, err)
	}
	d := a.waitFor(t, "the 2.x client's connect webhook", func(d delivery) bool { return d.Kind == "connect" && d.Status != 0 })
	if d.Payload.Socket.ID != hs.SID || d.Payload.Namespace != "/" || d.Payload.Socket.Handshake.Query["EIO"] != "3" {
		t.Fatalf("connect webhook: socket %q namespace %q query %v; want the Engine.IO id %q, \"/\", EIO 3",
			d.Payload.Socket.ID, d.Payload.Namespace, d.Payload.Socket.Handshake.Query, hs.SID)
	}
	poll := base + "&sid=" + hs.SID
	// The CONNECT answer comes once the app has admitted the socket: with the handshake's
	// answer, or in the next poll.
	if got := after; got != "2:40" {
		if got += get(poll); got != "2:40" {
			t.Fatalf("after the open packet %q, want the CONNECT answer 2:40 alone", got)
		}
	}

	// An event with a multi-unit character: the length counts UTF-16 units.
	msg := `42["say","😀"]`
	res, err := b.fetch(http.MethodPost, poll, fmt.Sprintf("%d:%s", len([]rune(msg))+1, msg), http.Header{"Content-Type": {"text/plain;charset=UTF-8"}})
	if err != nil || res.status != http.StatusOK || string(res.body) != "ok" {
		t.Fatalf("POST %s = %d %s, %v", poll, res.status, res.body, err)
	}
	ev := a.waitEvent(t, hs.SID, "say")
	assertJSON(t, "the event's args", ev.Payload.Args, `["😀"]`)

	b.emit(t, map[string]any{"event": "news", "args": []any{"你好"}}, 1)
	want := `42["news","你好"]`
	if got := get(poll); got != fmt.Sprintf("%d:%s", len([]rune(want)), want) {
		t.Fatalf("poll %q, want %q with its length in UTF-16 units", got, want)
	}
}
