// Package socketiotest provides a raw Socket.IO test client, as net/http/httptest provides
// test servers: it speaks Engine.IO v4 over one WebSocket and lets a test write and read
// Socket.IO packets as the text on the wire ("42[\"event\",1]"), so tests assert on exactly
// what a server sends. Pings are answered as they come.
package socketiotest

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ReadTimeout bounds every read: a test waiting for a packet that never comes fails after it.
const ReadTimeout = 5 * time.Second

// Client is one Engine.IO session over a WebSocket.
type Client struct {
	t    testing.TB
	Conn *websocket.Conn
	// Open is the Engine.IO open packet the server sent, without its type digit.
	Open string
}

// Dial opens a session to the Socket.IO endpoint under base, an http:// URL such as an
// httptest server's; path is the Socket.IO path, "/socket.io/" when empty. The connection is
// closed when the test ends.
func Dial(t testing.TB, base, path string) *Client {
	t.Helper()
	return DialHeader(t, base, path, nil)
}

// DialHeader is Dial with header added to the handshake request.
func DialHeader(t testing.TB, base, path string, header http.Header) *Client {
	t.Helper()
	if path == "" {
		path = "/socket.io/"
	}
	u := "ws" + strings.TrimPrefix(base, "http") + path + "?EIO=4&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		t.Fatalf("socketiotest: dial %s: %v", u, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &Client{t: t, Conn: conn}
	open := c.Read()
	if !strings.HasPrefix(open, "0{") {
		t.Fatalf("socketiotest: want an open packet, got %q", open)
	}
	c.Open = open[1:]
	return c
}

// Write sends one Engine.IO text message, such as `42["hi"]`.
func (c *Client) Write(msg string) {
	c.t.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("socketiotest: write: %v", err)
	}
}

// WriteBinary sends one binary message (a Socket.IO attachment).
func (c *Client) WriteBinary(b []byte) {
	c.t.Helper()
	if err := c.Conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.t.Fatalf("socketiotest: write: %v", err)
	}
}

// Read returns the next message that is not a ping, answering pings. A binary message comes
// back as "bin:" followed by its bytes.
func (c *Client) Read() string {
	c.t.Helper()
	for {
		_ = c.Conn.SetReadDeadline(time.Now().Add(ReadTimeout))
		typ, b, err := c.Conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("socketiotest: read: %v", err)
		}
		if typ == websocket.TextMessage && string(b) == "2" {
			c.Write("3")
			continue
		}
		if typ == websocket.BinaryMessage {
			return "bin:" + string(b)
		}
		return string(b)
	}
}

// Expect reads the next message and fails the test unless it is want.
func (c *Client) Expect(want string) {
	c.t.Helper()
	if got := c.Read(); got != want {
		c.t.Fatalf("socketiotest: got %q, want %q", got, want)
	}
}

// Connect joins namespace nsp with the auth payload (a JSON object, or "" for none) and returns
// the socket id of the server's CONNECT answer, which must carry exactly "sid".
func (c *Client) Connect(nsp, auth string) string {
	c.t.Helper()
	prefix := "40"
	if nsp != "/" && nsp != "" {
		prefix += nsp + ","
	}
	c.Write(prefix + auth)
	reply := c.Read()
	var body map[string]any
	if !strings.HasPrefix(reply, prefix+"{") || json.Unmarshal([]byte(strings.TrimPrefix(reply, prefix)), &body) != nil {
		c.t.Fatalf("socketiotest: connect %s: got %q", nsp, reply)
	}
	sid, ok := body["sid"].(string)
	if len(body) != 1 || !ok {
		c.t.Fatalf("socketiotest: CONNECT answer must carry exactly sid, got %v", body)
	}
	return sid
}

// ExpectClosed waits for the server to end the connection, answering pings meanwhile, and
// fails if it is still open after ReadTimeout.
func (c *Client) ExpectClosed() {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(ReadTimeout))
	for {
		typ, b, err := c.Conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("socketiotest: the server did not close the connection")
			}
			return
		}
		if typ == websocket.TextMessage && string(b) == "2" {
			_ = c.Conn.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}
