package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/socketio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sioServer is a real Socket.IO server on a loopback listener. connected receives each
// socket's id once it is in its namespace and rooms, which the client's CONNECT reply alone
// does not guarantee.
type sioServer struct {
	srv       *socketio.Server
	ts        *httptest.Server
	connected chan string
}

func newSIOServer(t *testing.T, opts socketio.Options) *sioServer {
	t.Helper()
	s := &sioServer{srv: socketio.NewServer(opts), connected: make(chan string, 16)}
	names := []string{"/"}
	for _, n := range opts.Namespaces {
		if n != "*" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		s.srv.Of(n).OnConnect(func(sock *socketio.Socket) { s.connected <- sock.ID() })
	}
	s.ts = httptest.NewServer(s.srv)
	t.Cleanup(func() {
		s.srv.Close()
		s.ts.Close()
	})
	return s
}

// rawClient speaks Engine.IO over a WebSocket; a test writes and reads Socket.IO packets as
// text.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
}

// dialRaw opens a WebSocket session to the Socket.IO endpoint at base (an http:// URL
// ending where the Socket.IO path begins).
func dialRaw(t *testing.T, base string) *rawClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c}
	if open := rc.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("want an open packet, got %q", open)
	}
	return rc
}

// connect dials and joins nsp, waiting until the server has the socket in the namespace.
func (s *sioServer) connect(t *testing.T, nsp string) (*rawClient, string) {
	t.Helper()
	c := dialRaw(t, s.ts.URL)
	prefix := "40"
	if nsp != "/" {
		prefix += nsp + ","
	}
	c.write(prefix)
	reply := c.read()
	var body struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(reply, prefix+"{") || json.Unmarshal([]byte(strings.TrimPrefix(reply, prefix)), &body) != nil {
		t.Fatalf("connect %s: got %q", nsp, reply)
	}
	if got := recv(t, s.connected); got != body.SID {
		t.Fatalf("connected socket %q, want %q", got, body.SID)
	}
	return c, body.SID
}

func (c *rawClient) write(msg string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message that is not a ping, answering pings; binary messages come as
// "bin:" and their bytes.
func (c *rawClient) read() string {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, b, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ == websocket.TextMessage && string(b) == "2" {
			c.write("3")
			continue
		}
		if typ == websocket.BinaryMessage {
			return "bin:" + string(b)
		}
		return string(b)
	}
}

// expect reads the next message and fails unless it is want.
func (c *rawClient) expect(want string) {
	c.t.Helper()
	if got := c.read(); got != want {
		c.t.Fatalf("client got %q, want %q", got, want)
	}
}

// expectClosed waits for the server to end the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		typ, b, err := c.conn.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.t.Fatal("connection not closed")
			}
			return
		}
		if typ == websocket.TextMessage && string(b) == "2" {
			c.write("3")
		}
	}
}

// probe emits a marker event to every socket of "/" and checks it is the next thing each
// client reads: nothing else reached them before it.
func (s *sioServer) probe(t *testing.T, clients ...*rawClient) {
	t.Helper()
	if _, err := s.srv.Of("/").Emit("probe"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.expect(`42["probe"]`)
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting")
		var zero T
		return zero
	}
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   string
}

// fetch sends one request with client and reads the whole answer; safe on any goroutine.
func fetch(client *http.Client, method, url, body string, header http.Header) (response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{res.StatusCode, res.Header, string(b)}, nil
}

// do is fetch on the test's goroutine.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) response {
	t.Helper()
	res, err := fetch(client, method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res
}
