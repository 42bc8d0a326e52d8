package engineio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests feed the server what a hostile or broken client sends, and check that the
// session at fault ends with the right reason while a well-behaved client on the same server
// keeps exchanging messages.

// wellBehaved is an echo client on its own WebSocket session.
type wellBehaved struct {
	t    *testing.T
	conn *websocket.Conn
	n    int
}

func newWellBehaved(t *testing.T, ts *testServer) *wellBehaved {
	t.Helper()
	c := dialWS(t, ts, "")
	if _, open := readWS(t, c); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	return &wellBehaved{t: t, conn: c}
}

// echo sends a message and waits for it back, answering pings meanwhile.
func (w *wellBehaved) echo() {
	w.t.Helper()
	w.n++
	msg := fmt.Sprintf("4hello %d", w.n)
	if err := w.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		w.t.Fatalf("well-behaved client: write: %v", err)
	}
	for {
		_, got := readWS(w.t, w.conn)
		if got == "2" {
			_ = w.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		if got != msg {
			w.t.Fatalf("well-behaved client got %q, want %q", got, msg)
		}
		return
	}
}

// rawWebSocket opens a WebSocket session by hand and returns the TCP connection after the
// 101 answer and the open packet, so a test can write arbitrary frames.
func rawWebSocket(t *testing.T, ts *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: %v %v", resp, err)
	}
	// The open packet: an unmasked text frame with a 7-bit length.
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(br, make([]byte, hdr[1]&0x7f)); err != nil {
		t.Fatal(err)
	}
	return conn, br
}

// expectEOF waits for the server to close a raw connection.
func expectEOF(t *testing.T, conn net.Conn, r io.Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
}

func TestHostileWebSocketMessages(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 1000})
	good := newWellBehaved(t, ts)
	good.echo()
	for _, tt := range []struct {
		name   string
		typ    int
		data   []byte
		reason string
	}{
		{"garbage bytes", websocket.TextMessage, []byte("\xff\xfe\x00garbage"), ReasonParseError},
		{"unknown packet type", websocket.TextMessage, []byte("9hello"), ReasonParseError},
		{"empty message", websocket.TextMessage, []byte{}, ReasonParseError},
		{"client ping", websocket.TextMessage, []byte("2"), ReasonTransportError},
		{"upgrade out of place", websocket.TextMessage, []byte("5"), ReasonParseError},
		{"over maxPayload", websocket.BinaryMessage, make([]byte, 1001), ReasonTransportError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialWS(t, ts, "")
			readWS(t, c)
			if err := c.WriteMessage(tt.typ, tt.data); err != nil {
				t.Fatal(err)
			}
			if ev := ts.waitClose(t); ev.reason != tt.reason {
				t.Errorf("closed with %q (%v), want %q", ev.reason, ev.err, tt.reason)
			}
			good.echo()
		})
	}
}

func TestHostileWebSocketFrames(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 1000})
	good := newWellBehaved(t, ts)
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		// A masked text frame claiming 2^63-1 bytes of payload.
		{"huge length claim", []byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}},
		// Client frames must be masked.
		{"unmasked frame", []byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}},
		// Opcode 3 is reserved.
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}},
		// A frame header cut short, then the connection closed.
		{"truncated header", []byte{0x81, 0xfe, 0x01}},
		// A continuation frame with nothing to continue.
		{"orphan continuation", []byte{0x80, 0x80, 1, 2, 3, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := rawWebSocket(t, ts)
			if _, err := conn.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			if tt.name == "truncated header" {
				_ = conn.(*net.TCPConn).CloseWrite()
			}
			expectEOF(t, conn, br)
			if ev := ts.waitClose(t); ev.reason != ReasonTransportClose && ev.reason != ReasonTransportError {
				t.Errorf("closed with %q, want a transport close or error", ev.reason)
			}
			good.echo()
		})
	}
}

func TestHostilePollingBodies(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 1000})
	good := newWellBehaved(t, ts)
	t.Run("content-length claims more than sent", func(t *testing.T) {
		sid := handshakePolling(t, ts)
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n4hi", sid)
		_ = conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		if ev := ts.waitClose(t); ev.sid != sid || !errors.Is(ev.err, ErrPayloadTooLarge) {
			t.Errorf("close %+v, want %s closed for its payload", ev, sid)
		}
		good.echo()
	})
	t.Run("body shorter than its length", func(t *testing.T) {
		sid := handshakePolling(t, ts)
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n4hi", sid)
		_ = conn.(*net.TCPConn).CloseWrite()
		if ev := ts.waitClose(t); ev.sid != sid || ev.reason != ReasonTransportError {
			t.Errorf("close %+v, want %s closed with a transport error", ev, sid)
		}
		for _, m := range ts.received() {
			if m == "hi" {
				t.Error("a packet of a broken body was delivered")
			}
		}
		good.echo()
	})
	t.Run("chunked body past maxPayload", func(t *testing.T) {
		sid := handshakePolling(t, ts)
		status, _ := do(t, "POST", ts.url("transport=polling&sid="+sid), "4"+strings.Repeat("x", 5000))
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", status)
		}
		ts.waitClose(t)
		good.echo()
	})
	t.Run("garbage payload", func(t *testing.T) {
		sid := handshakePolling(t, ts)
		status, _ := do(t, "POST", ts.url("transport=polling&sid="+sid), "4ok\x1e\x00\xff\x1e4never")
		if status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", status)
		}
		if ev := ts.waitClose(t); ev.reason != ReasonParseError {
			t.Errorf("reason %q, want parse error", ev.reason)
		}
		for _, m := range ts.received() {
			if m == "ok" || m == "never" {
				t.Errorf("a packet of a malformed body was delivered: %q", m)
			}
		}
		good.echo()
	})
}

func TestHalfOpenPollingSessionTimesOut(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	sid := handshakePolling(t, ts) // and then nothing: no GET, no POST
	if ev := ts.waitClose(t); ev.sid != sid || ev.reason != ReasonPingTimeout {
		t.Errorf("close %+v, want %s closed with ping timeout", ev, sid)
	}
	if ts.eio.Len() != 0 {
		t.Errorf("%d sessions left", ts.eio.Len())
	}
}

func TestHandshakeFloodFromOneAddress(t *testing.T) {
	var hits limitCounter
	ts := newTestServer(t, Options{HandshakeRate: 0.001, HandshakeBurst: 5, MaxSessionsPerAddr: 3,
		TrustedProxies: loopbackProxy, OnLimit: hits.hook})
	ok, refused := 0, 0
	for range 50 {
		if status, _ := handshakeFrom(t, ts, "203.0.113.66"); status == 200 {
			ok++
		} else {
			refused++
		}
	}
	if ok != 3 || refused != 47 {
		t.Errorf("%d admitted, %d refused; want 3 and 47", ok, refused)
	}
	if hits.get(LimitSessionsPerAddr) != 2 || hits.get(LimitHandshakeRate) != 45 {
		t.Errorf("limit hits %v", hits.hits)
	}
	// The loopback client (no X-Forwarded-For) is another address: served.
	good := newWellBehaved(t, ts)
	good.echo()
}

func TestSlowlorisDoesNotBlockSessions(t *testing.T) {
	// As in cmd/siobridge: the public server has a ReadHeaderTimeout. It must cut clients
	// that trickle their headers, leave long polls and WebSockets alone, and keep nothing of
	// the clients it cut.
	var hits limitCounter
	eio := NewServer(Options{PingInterval: time.Second, PingTimeout: 5 * time.Second, OnLimit: hits.hook}, func(s *Session) SessionHandler {
		return &echoHandler{sess: s, closed: make(chan closeEvent, 16), mu: new(sync.Mutex), got: new([]string)}
	})
	hs := httptest.NewUnstartedServer(eio)
	hs.Config.ReadHeaderTimeout = 150 * time.Millisecond
	hs.Start()
	defer hs.Close()
	defer eio.Close()
	ts := &testServer{Server: hs, eio: eio}

	good := newWellBehaved(t, ts)
	good.echo()
	// The goroutines of the server and its good client: the slow clients, once cut, must
	// leave no more than these.
	baseline := runtime.NumGoroutine()

	const slowClients = 10
	slow := make([]net.Conn, slowClients)
	for i := range slow {
		c, err := net.Dial("tcp", hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
		slow[i] = c
	}

	// A long poll outlives the header timeout: the ping comes a second after the handshake.
	sid := handshakePolling(t, ts)
	start := time.Now()
	if _, body := do(t, "GET", ts.url("transport=polling&sid="+sid), ""); body != "2" {
		t.Fatalf("long poll got %q, want a ping", body)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("the poll returned after %v, before the header timeout: the test proves nothing", d)
	}
	for range 3 {
		good.echo()
	}
	// Meanwhile the slow clients, still trickling, have been cut off.
	for n, c := range slow {
		for i := 0; ; i++ {
			if _, err := fmt.Fprint(c, "X"); err != nil {
				break
			}
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
				break // closed (or answered 408 and closed)
			}
			if i == 100 {
				t.Fatalf("slow client %d is still connected after 5s", n)
			}
		}
	}
	good.echo()

	// What the slow clients had on the server ends with them. The long poll's keep-alive
	// connection, closed here, and a ping's timer end shortly: a slack of 2, where a goroutine
	// kept per slow client would be 10.
	http.DefaultClient.CloseIdleConnections()
	const slack = 2
	deadline := time.Now().Add(5 * time.Second)
	for n := runtime.NumGoroutine(); n > baseline+slack; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines 5s after %d slow clients were cut, %d before them; want at most %d more:\n%s",
				n, slowClients, baseline, slack, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
