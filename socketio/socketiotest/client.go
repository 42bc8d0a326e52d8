package socketiotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// v3 is true for a session of Engine.IO v3 (DialEIO3), whose binary messages carry a
	// leading type byte 4 on the wire.
	v3 bool
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
	return dial(t, base, path, "EIO=4&transport=websocket", header)
}

// DialEIO3 opens a session as socket.io-client 2.x does (Engine.IO v3), with query added to
// the handshake's ("" for none). The server must allow v3 (engineio.Options.AllowEIO3). Its
// binary messages carry the type byte 4, which Write and Read add and take away; the client
// does not ping by itself.
func DialEIO3(t testing.TB, base, path, query string) *Client {
	t.Helper()
	q := "EIO=3&transport=websocket"
	if query != "" {
		q += "&" + query
	}
	c := dial(t, base, path, q, nil)
	c.v3 = true
	return c
}

func dial(t testing.TB, base, path, query string, header http.Header) *Client {
	t.Helper()
	if path == "" {
		path = "/socket.io/"
	}
	u := "ws" + strings.TrimPrefix(base, "http") + path + "?" + query
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
	if c.v3 {
		b = append([]byte{4}, b...)
	}
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
			if c.v3 {
				if len(b) == 0 || b[0] != 4 {
					c.t.Fatalf("socketiotest: v3 binary message without its type byte 4: %q", b)
				}
				b = b[1:]
			}
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

// ConnectFields joins "/" with the auth payload ("" for none) and returns the fields of the
// server's CONNECT answer: "sid", and "pid" with connection state recovery on.
func (c *Client) ConnectFields(auth string) map[string]string {
	c.t.Helper()
	c.Write("40" + auth)
	reply := c.Read()
	var body map[string]string
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &body) != nil {
		c.t.Fatalf("socketiotest: CONNECT answer %q", reply)
	}
	return body
}

// ReadEvent reads an EVENT of "/" and returns its arguments as raw JSON values.
func (c *Client) ReadEvent() []json.RawMessage {
	c.t.Helper()
	msg := c.Read()
	var arr []json.RawMessage
	if !strings.HasPrefix(msg, "42[") || json.Unmarshal([]byte(msg[2:]), &arr) != nil {
		c.t.Fatalf("socketiotest: want an event, got %q", msg)
	}
	return arr
}

// Offset returns an event's last argument, where connection state recovery puts the
// event's offset, failing the test when it is not a string.
func Offset(t testing.TB, args []json.RawMessage) string {
	t.Helper()
	var off string
	if len(args) == 0 || json.Unmarshal(args[len(args)-1], &off) != nil {
		t.Fatalf("socketiotest: the last argument of %s is not an offset", args)
	}
	return off
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

// Polling is one Engine.IO session over HTTP long-polling, as a client without WebSocket
// holds it: Post sends messages as one payload, Read polls for what the server sends. Pings
// are answered as they come.
type Polling struct {
	t      testing.TB
	url    string // with EIO, transport and sid
	client *http.Client
	read   []string // received and not yet returned
}

// DialPolling opens a long-polling session to the Socket.IO endpoint under base, as Dial
// does. The session is closed (an Engine.IO close packet) when the test ends, unless the test
// closed it.
func DialPolling(t testing.TB, base, path string) *Polling {
	t.Helper()
	if path == "" {
		path = "/socket.io/"
	}
	p := &Polling{t: t, url: base + path + "?EIO=4&transport=polling", client: &http.Client{Timeout: 2 * ReadTimeout}}
	body, err := p.do(http.MethodGet, "")
	var open struct {
		SID string `json:"sid"`
	}
	if err != nil || !strings.HasPrefix(body, "0{") || json.Unmarshal([]byte(body[1:]), &open) != nil || open.SID == "" {
		t.Fatalf("socketiotest: polling handshake: %q, %v", body, err)
	}
	p.url += "&sid=" + open.SID
	t.Cleanup(func() {
		_, _ = p.do(http.MethodPost, "1")
		p.client.CloseIdleConnections()
	})
	return p
}

func (p *Polling) do(method, body string) (string, error) {
	req, err := http.NewRequest(method, p.url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	res, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s answered %d %s", method, res.StatusCode, b)
	}
	return string(b), err
}

// Post sends Engine.IO messages, such as `40/chat,` or `42["hi"]`, in one POST.
func (p *Polling) Post(msgs ...string) {
	p.t.Helper()
	if body, err := p.do(http.MethodPost, strings.Join(msgs, "\x1e")); err != nil || body != "ok" {
		p.t.Fatalf("socketiotest: POST: %q, %v", body, err)
	}
}

// Read returns the next n messages that are not pings, polling as often as it takes (at most
// n times, each GET waiting at most 2*ReadTimeout).
func (p *Polling) Read(n int) []string {
	p.t.Helper()
	for range n {
		if len(p.read) >= n {
			break
		}
		body, err := p.do(http.MethodGet, "")
		if err != nil {
			p.t.Fatalf("socketiotest: GET: %v", err)
		}
		for _, m := range strings.Split(body, "\x1e") {
			if m == "2" {
				p.Post("3")
				continue
			}
			p.read = append(p.read, m)
		}
	}
	if len(p.read) < n {
		p.t.Fatalf("socketiotest: got %d messages %q, want %d", len(p.read), p.read, n)
	}
	out := p.read[:n:n]
	p.read = p.read[n:]
	return out
}
