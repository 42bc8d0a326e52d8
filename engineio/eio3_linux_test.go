package engineio

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

var sidRE = regexp.MustCompile(`sid\\?":\\?"([A-Za-z0-9_-]{20})`)

// v3 and JSONP polls are answered in forms a held connection does not write: on a connection
// held for a v4 poll they go back to net/http, and their GETs wait in its handlers.
func TestEIO3AndJSONPPollsAreNotHeld(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	for _, tc := range []struct{ query, want string }{
		{"EIO=3&transport=polling", "3:4hi"},
		{"EIO=3&transport=polling&j=3", `___eio[3]("3:4hi");`},
		{"EIO=4&transport=polling&j=4", `___eio[4]("4hi");`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, body := do(t, "GET", ts.URL+"/socket.io/?"+tc.query, "")
			m := sidRE.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("handshake: %s", body)
			}
			sid := m[1]
			sess := ts.eio.Session(sid)
			if sess == nil {
				t.Fatalf("no session %q", sid)
			}

			// A connection held for a v4 poll.
			c, sid4, _ := heldPollConn(t, ts)

			// The poll of the other form on it goes to net/http, and waits there.
			c.send(fmt.Sprintf("GET /socket.io/?%s&sid=%s HTTP/1.1\r\nHost: test\r\n\r\n", tc.query, sid))
			waitPending(t, sess, false)
			if sess.parked.Load() != nil {
				t.Fatal("the poll was parked on a held connection")
			}
			waitHeld(t, ts.eio, 0)
			_ = sess.Send(NewMessage([]byte("hi"), false))
			if _, body := c.read(); body != tc.want {
				t.Fatalf("poll answer %q, want %q", body, tc.want)
			}
			ts.eio.Session(sid4).Close()
			ts.waitClose(t)
		})
	}
}
