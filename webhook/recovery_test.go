package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// TestRecoveredConnectWebhook: with connection state recovery, a client whose transport drops
// yields a disconnect webhook with its reason, and its recovery a connect webhook with
// "recovered": true, its former id, rooms and data, and an auth without the private session
// id. The app may refuse it; the session is then gone.
func TestRecoveredConnectWebhook(t *testing.T) {
	hooks := make(chan Payload, 16)
	refuse := make(chan bool, 1)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		hooks <- p
		if p.Type != KindConnect {
			return
		}
		if !p.Recovered {
			_, _ = w.Write([]byte(`{"join":["lobby"],"data":{"user":"bob"}}`))
			return
		}
		if <-refuse {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"go away"}`))
		}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL})
	srv := socketio.NewServer(socketio.Options{Recovery: socketio.RecoveryOptions{MaxDisconnection: time.Minute}})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindConnect, KindEvent, KindDisconnect}})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	next := func(kind Kind) Payload {
		t.Helper()
		p := receive(t, hooks, string(kind)+" webhook")
		if p.Type != kind {
			t.Fatalf("got a %s webhook, want %s", p.Type, kind)
		}
		return p
	}
	connect := func(c *socketiotest.Client, auth string) string {
		t.Helper()
		c.Write("40" + auth)
		return c.Read()
	}

	c := socketiotest.Dial(t, ts.URL, "")
	reply := connect(c, "")
	var first map[string]string
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &first) != nil || first["pid"] == "" {
		t.Fatalf("CONNECT answer %q", reply)
	}
	if p := next(KindConnect); p.Recovered || len(p.Socket.Rooms) != 0 {
		t.Fatalf("first connect webhook %+v", p)
	}
	srv.Of("/").To("lobby").Emit("news", 1)
	auth := fmt.Sprintf(`{"token":"t","pid":%q,"offset":%q}`, first["pid"], offsetOf(t, c.Read()))

	c.Conn.Close()
	if p := next(KindDisconnect); p.Reason != "transport close" || !slices.Contains(p.Socket.Rooms, "lobby") {
		t.Fatalf("disconnect webhook %+v", p)
	}

	// Recovered: the app sees the socket it knew, and accepts it.
	refuse <- false
	c2 := socketiotest.Dial(t, ts.URL, "")
	if reply := connect(c2, auth); reply != fmt.Sprintf(`40{"sid":%q,"pid":%q}`, first["sid"], first["pid"]) {
		t.Fatalf("recovered CONNECT answer %q, first %v", reply, first)
	}
	p := next(KindConnect)
	if !p.Recovered || p.Socket.ID != first["sid"] || !slices.Contains(p.Socket.Rooms, "lobby") ||
		string(p.Socket.Data) != `{"user":"bob"}` || string(p.Socket.Handshake.Auth) != `{"token":"t"}` {
		t.Fatalf("recovered connect webhook: recovered=%v socket %+v auth %s", p.Recovered, p.Socket, p.Socket.Handshake.Auth)
	}

	// Refused: the client gets the app's message, and the session is gone.
	srv.Of("/").To("lobby").Emit("news", 2)
	auth = fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offsetOf(t, c2.Read()))
	c2.Conn.Close()
	next(KindDisconnect)
	refuse <- true
	c3 := socketiotest.Dial(t, ts.URL, "")
	if reply := connect(c3, auth); reply != `44{"message":"go away"}` {
		t.Fatalf("refused recovery: %q", reply)
	}
	if p := next(KindConnect); !p.Recovered {
		t.Fatal("the refused connect was not a recovery")
	}
	if reply := connect(c3, auth); !strings.HasPrefix(reply, "40{") || strings.Contains(reply, first["sid"]) {
		t.Fatalf("a refused session was restored: %q", reply)
	}
	if p := next(KindConnect); p.Recovered {
		t.Fatal("a refused session was offered again")
	}
}

// offsetOf returns the offset a stored event carries as its last argument.
func offsetOf(t *testing.T, event string) string {
	t.Helper()
	var args []json.RawMessage
	var offset string
	if !strings.HasPrefix(event, "42[") || json.Unmarshal([]byte(event[2:]), &args) != nil ||
		len(args) != 3 || json.Unmarshal(args[2], &offset) != nil {
		t.Fatalf("event %q: want a name, an argument and an offset", event)
	}
	return offset
}
