//go:build linux

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
	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/engineio/internal/wsframe"
)

// registered reports whether the session's WebSocket is on the epoller.
func registered(s *Session) bool {
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		return false
	}
	p := s.srv.epoll
	p.mu.RLock()
	defer p.mu.RUnlock()
	return pc.id != removedID && p.conns[pc.id] == pc
}

func epollerLen(p *epoller) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.conns)
}

// rawDial opens a WebSocket by hand to the Engine.IO endpoint with the query, and returns the
// connection after the 101 answer.
func rawDial(t *testing.T, ts *testServer, query string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /socket.io/?EIO=4&transport=websocket%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", query)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: %v %v", resp, err)
	}
	return conn, br
}

// readServerFrame reads one server frame (unmasked, under 64 KiB) and returns its opcode and
// payload.
func readServerFrame(t *testing.T, conn net.Conn, br *bufio.Reader) (byte, string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, string(p)
}

// Many idle WebSockets hold no goroutine; when all send at once, every message is read and
// answered.
func TestEpollerManyIdleConnectionsThenAllSend(t *testing.T) {
	const n = 200
	ts := newTestServerCap(t, Options{}, n)
	before := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialWS(t, ts, "")
		readWS(t, conns[i])
	}
	waitFor(t, func() bool { return epollerLen(ts.eio.epoll) == n })
	// The writers of the open packets and the upgrading handlers end shortly after their
	// clients have read; then the idle connections hold nothing.
	extra := 0
	deadline := time.Now().Add(5 * time.Second)
	for extra = runtime.NumGoroutine() - before; extra > 5 && time.Now().Before(deadline); extra = runtime.NumGoroutine() - before {
		time.Sleep(time.Millisecond)
	}
	if extra > 5 {
		t.Fatalf("%d idle WebSockets hold %d goroutines", n, extra)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Go(func() {
			<-start
			msg := fmt.Sprintf("4msg %d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
				errs <- fmt.Errorf("conn %d: got %q %v, want %q", i, got, err, msg)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Each session's packets are handled in the order the client sent them, also when many come
// in one read and in many.
func TestEpollerKeepsOrder(t *testing.T) {
	ts := newTestServer(t, Options{})
	conn, br := rawDial(t, ts, "")
	readServerFrame(t, conn, br) // open
	var burst []byte
	const n = 500
	for i := range n {
		burst = append(burst, clientFrame(true, opText, fmt.Appendf(nil, "4m%d", i), testKey)...)
	}
	// Half in one write, the rest in small pieces.
	if _, err := conn.Write(burst[:len(burst)/2]); err != nil {
		t.Fatal(err)
	}
	for rest := burst[len(burst)/2:]; len(rest) > 0; {
		k := min(len(rest), 37)
		if _, err := conn.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	for i := range n {
		if _, got := readServerFrame(t, conn, br); got != fmt.Sprintf("4m%d", i) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
}

// A frame that arrives a byte at a time, with pauses, is read as it comes and handled once
// whole; a ping between two fragments is answered at once.
func TestEpollerFrameByteByByte(t *testing.T) {
	ts := newTestServer(t, Options{})
	conn, br := rawDial(t, ts, "")
	readServerFrame(t, conn, br) // open
	frames := clientFrame(false, opText, []byte("4slow"), testKey)
	frames = append(frames, clientFrame(true, wsframe.OpPing, []byte("p"), testKey)...)
	frames = append(frames, clientFrame(true, wsframe.OpContinuation, []byte("ly"), testKey)...)
	for _, b := range frames {
		if _, err := conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if op, got := readServerFrame(t, conn, br); op != opPong || got != "p" {
		t.Fatalf("got %d %q, want the pong", op, got)
	}
	if op, got := readServerFrame(t, conn, br); op != opText || got != "4slowly" {
		t.Fatalf("got %d %q, want the echo", op, got)
	}
}

// A session closed from either side while its reader waits, with or without half a frame
// read, is taken off the epoller and closed with the right reason.
func TestEpollerCloseWhileReadPending(t *testing.T) {
	for _, tt := range []struct {
		name    string
		partial bool
		server  bool
		reason  string
	}{
		{"client closes idle", false, false, ReasonTransportClose},
		{"client closes mid-frame", true, false, ReasonTransportClose},
		{"server closes idle", false, true, ReasonForcedClose},
		{"server closes mid-frame", true, true, ReasonForcedClose},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			conn, br := rawDial(t, ts, "")
			_, open := readServerFrame(t, conn, br)
			sess := ts.eio.Session(parseOpen(t, open).SID)
			waitFor(t, func() bool { return registered(sess) })
			sess.mu.Lock()
			pc := sess.pc
			sess.mu.Unlock()
			if tt.partial {
				drained := ts.eio.epoll.drained.Load()
				f := clientFrame(true, opText, []byte("4never finished"), testKey)
				if _, err := conn.Write(f[:9]); err != nil {
					t.Fatal(err)
				}
				// A reader lets go of the socket once it has handed what it read to the
				// frame reader; nothing else is read until the test writes again, so the
				// frame reader is the test's to look at then.
				waitFor(t, func() bool { return ts.eio.epoll.drained.Load() > drained && pc.turn.Load() == turnIdle })
			}
			// The 9 bytes: the 6 of the header, then 3 of the 15 of the payload.
			if read, size, in := pc.fr.InFrame(); tt.partial != (in && read == 3 && size == 15) || tt.partial == pc.fr.Idle() {
				t.Fatalf("the frame reader holds %d of %d payload bytes (in a frame: %v, idle: %v); want half a frame: %v",
					read, size, in, pc.fr.Idle(), tt.partial)
			}
			if tt.server {
				sess.Close()
				// The close packet, then the close frame, then the end.
				if _, got := readServerFrame(t, conn, br); got != "1" {
					t.Fatalf("got %q, want the close packet", got)
				}
				if op, _ := readServerFrame(t, conn, br); op != opClose {
					t.Fatalf("got opcode %d, want a close frame", op)
				}
				expectEOF(t, conn, br)
			} else {
				conn.Close()
			}
			if ev := ts.waitClose(t); ev.reason != tt.reason {
				t.Fatalf("closed with %q (%v), want %q", ev.reason, ev.err, tt.reason)
			}
			waitFor(t, func() bool { return epollerLen(ts.eio.epoll) == 0 })
		})
	}
}

// A client's close frame is echoed with its status, then the connection ends.
func TestEpollerEchoesCloseFrame(t *testing.T) {
	ts := newTestServer(t, Options{})
	conn, br := rawDial(t, ts, "")
	readServerFrame(t, conn, br) // open
	if _, err := conn.Write(clientFrame(true, opClose, []byte{0x03, 0xe9, 'b', 'y', 'e'}, testKey)); err != nil {
		t.Fatal(err)
	}
	if op, got := readServerFrame(t, conn, br); op != opClose || got != "\x03\xe9" {
		t.Fatalf("got %d %q, want the close frame echoed with 1001", op, got)
	}
	expectEOF(t, conn, br)
	if ev := ts.waitClose(t); ev.reason != ReasonTransportClose || ev.err != nil {
		t.Fatalf("close %+v", ev)
	}
}

// Hostile frames on the epoller: refused with the reasons gorilla's reader gives, a close
// frame telling why, and MaxPayload counted as a limit hit.
func TestEpollerRefusesBadFrames(t *testing.T) {
	var mu sync.Mutex
	var limits []string
	ts := newTestServer(t, Options{MaxPayload: 100, OnLimit: func(l string) {
		mu.Lock()
		limits = append(limits, l)
		mu.Unlock()
	}})
	for _, tt := range []struct {
		name   string
		frame  []byte
		status int
		reason string
		err    error
	}{
		{"unmasked", []byte{0x81, 0x02, '4', 'a'}, websocket.CloseProtocolError, ReasonTransportClose, nil},
		{"over MaxPayload", clientFrame(true, opBinary, make([]byte, 101), testKey), websocket.CloseMessageTooBig, ReasonTransportError, ErrPayloadTooLarge},
		{"fragments over MaxPayload", append(clientFrame(false, opText, []byte("4"+strings.Repeat("x", 60)), testKey),
			clientFrame(true, wsframe.OpContinuation, make([]byte, 50), testKey)...), websocket.CloseMessageTooBig, ReasonTransportError, ErrPayloadTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := rawDial(t, ts, "")
			readServerFrame(t, conn, br) // open
			if _, err := conn.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			if op, got := readServerFrame(t, conn, br); op != opClose || len(got) < 2 || int(got[0])<<8|int(got[1]) != tt.status {
				t.Fatalf("got %d %q, want a close frame with %d", op, got, tt.status)
			}
			expectEOF(t, conn, br)
			ev := ts.waitClose(t)
			if ev.reason != tt.reason || (tt.err != nil && !errors.Is(ev.err, tt.err)) {
				t.Fatalf("close %+v, want %q %v", ev, tt.reason, tt.err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(limits) != 2 || limits[0] != LimitPayload || limits[1] != LimitPayload {
		t.Fatalf("limit hits %v, want two %s", limits, LimitPayload)
	}
}

// An upgrade from polling ends on the epoller, and messages sent in the same write as the "5"
// are delivered after it, in order.
func TestEpollerUpgradeKeepsMessagesAfterUpgradePacket(t *testing.T) {
	ts := newTestServer(t, Options{})
	sid := handshakePolling(t, ts)
	conn, br := rawDial(t, ts, "&sid="+sid)
	if _, err := conn.Write(clientFrame(true, opText, []byte("2probe"), testKey)); err != nil {
		t.Fatal(err)
	}
	if _, got := readServerFrame(t, conn, br); got != "3probe" {
		t.Fatalf("got %q, want 3probe", got)
	}
	var b []byte
	b = append(b, clientFrame(true, opText, []byte("6"), testKey)...)
	b = append(b, clientFrame(true, opText, []byte("5"), testKey)...)
	b = append(b, clientFrame(true, opText, []byte("4first"), testKey)...)
	b = append(b, clientFrame(true, opText, []byte("4second"), testKey)...)
	b = append(b, clientFrame(false, opText, []byte("4thi"), testKey)...) // a frame the epoller finishes
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4first", "4second"} {
		if _, got := readServerFrame(t, conn, br); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	sess := ts.eio.Session(sid)
	waitFor(t, func() bool { return registered(sess) })
	if _, err := conn.Write(clientFrame(true, wsframe.OpContinuation, []byte("rd"), testKey)); err != nil {
		t.Fatal(err)
	}
	if _, got := readServerFrame(t, conn, br); got != "4third" {
		t.Fatalf("got %q, want 4third", got)
	}
	if tr := sess.Transport(); tr != TransportWebSocket {
		t.Fatalf("transport %q", tr)
	}
}

// Server.Close with WebSockets registered, one of them mid-frame and one upgraded from
// polling, leaves no goroutine behind: not the epoller's, not a reader's.
func TestEpollerServerCloseLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ts := &testServer{closed: make(chan closeEvent, 64)}
	ts.eio = NewServer(Options{}, func(s *Session) SessionHandler {
		return &echoHandler{sess: s, closed: ts.closed, mu: &ts.mu, got: &ts.got}
	})
	srv := httptest.NewServer(ts.eio)
	ts.Server = srv
	defer srv.Close()
	defer ts.eio.Close()
	var conns []net.Conn
	for range 20 {
		c, br := rawDial(t, ts, "")
		readServerFrame(t, c, br)
		conns = append(conns, c)
	}
	if _, err := conns[0].Write(clientFrame(true, opText, []byte("4half"), testKey)[:5]); err != nil {
		t.Fatal(err)
	}
	sid := handshakePolling(t, ts)
	up, br := rawDial(t, ts, "&sid="+sid)
	_, _ = up.Write(clientFrame(true, opText, []byte("2probe"), testKey))
	readServerFrame(t, up, br)
	_, _ = up.Write(clientFrame(true, opText, []byte("5"), testKey))
	waitFor(t, func() bool { return epollerLen(ts.eio.epoll) == 21 })

	ts.eio.Close()
	srv.Close()
	for _, c := range conns {
		c.Close()
	}
	up.Close()
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(ignore); err != nil {
		t.Fatal(err)
	}
}

// Without the epoller, every WebSocket has its reader goroutine, as on other systems, and
// behaves the same.
func TestWebSocketWithoutPoller(t *testing.T) {
	ts := newTestServer(t, Options{DisableWebSocketPoller: true, MaxPayload: 100})
	if ts.eio.epoll != nil {
		t.Fatal("the server has an epoller")
	}
	c := dialWS(t, ts, "")
	readWS(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte("4hi"))
	if _, got := readWS(t, c); got != "4hi" {
		t.Fatalf("echo %q", got)
	}
	// The session's reader is running: counting goroutines would also count other tests'
	// ending meanwhile, so look for it by name.
	stacks := make([]byte, 1<<20)
	if n := runtime.Stack(stacks, true); !strings.Contains(string(stacks[:n]), "engineio.(*Session).readLoop") {
		t.Fatalf("no readLoop goroutine for an open WebSocket without the epoller:\n%s", stacks[:n])
	}
	_ = c.WriteMessage(websocket.BinaryMessage, make([]byte, 101))
	if ev := ts.waitClose(t); ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrPayloadTooLarge) {
		t.Fatalf("close %+v", ev)
	}
}

// A client that sends more than a reader's turn without pause is read over several turns, its
// messages all handled, in order.
func TestEpollerLongBurstAcrossTurns(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 1 << 20})
	conn, br := rawDial(t, ts, "")
	readServerFrame(t, conn, br) // open
	const n = 300
	msg := func(i int) string { return fmt.Sprintf("4%04d%s", i, strings.Repeat("z", 3000)) }
	var burst []byte
	for i := range n {
		burst = append(burst, clientFrame(true, opText, []byte(msg(i)), testKey)...)
	}
	if len(burst) <= readsPerTurn*readBufSize {
		t.Fatalf("a burst of %d bytes fits in one turn", len(burst))
	}
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(burst)
		werr <- err
	}()
	for i := range n {
		if _, got := readServerFrame(t, conn, br); got != msg(i) {
			t.Fatalf("message %d: got %.10q", i, got)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// Sessions ending from both sides while their clients send: every session ends, the epoller's
// table empties, and no reader is left.
func TestEpollerChurn(t *testing.T) {
	const n = 60
	ts := newTestServerCap(t, Options{}, n)
	var wg sync.WaitGroup
	for i := range n {
		conn, br := rawDial(t, ts, "")
		_, open := readServerFrame(t, conn, br)
		sess := ts.eio.Session(parseOpen(t, open).SID)
		wg.Go(func() {
			go func() { _, _ = io.Copy(io.Discard, br) }()
			for j := range 50 {
				f := clientFrame(true, opText, fmt.Appendf(nil, "4m%d", j), testKey)
				if j == 25 {
					switch i % 3 {
					case 0:
						sess.Close()
					case 1:
						conn.Close()
					default:
						go sess.Close()
					}
				}
				if _, err := conn.Write(f[:3]); err != nil {
					return
				}
				if _, err := conn.Write(f[3:]); err != nil {
					return
				}
			}
			conn.Close()
		})
	}
	wg.Wait()
	for range n {
		ts.waitClose(t)
	}
	waitFor(t, func() bool { return epollerLen(ts.eio.epoll) == 0 && ts.eio.Len() == 0 })
}

// An event for a connection that a reader has is left to that reader, which reads again
// before it lets go; an event for one that no reader has dispatches it.
func TestEpollConnTurn(t *testing.T) {
	var pc epollConn
	steps := []struct {
		op   string
		want bool
		turn uint32
	}{
		{"claim", true, turnBusy},    // an event: dispatched
		{"release", true, turnIdle},  // drained, nothing came: let go
		{"claim", true, turnBusy},    // the next event
		{"claim", false, turnAgain},  // another while it is read: left to its reader
		{"claim", false, turnAgain},  // and another: still one more turn
		{"release", false, turnBusy}, // drained: it reads again
		{"release", true, turnIdle},
	}
	for i, s := range steps {
		var got bool
		if s.op == "claim" {
			got = pc.claim()
		} else {
			got = pc.release(&epoller{})
		}
		if got != s.want || pc.turn.Load() != s.turn {
			t.Fatalf("step %d (%s): %v, turn %d; want %v, turn %d", i, s.op, got, pc.turn.Load(), s.want, s.turn)
		}
	}
}

// stallHandler echoes messages, except "stall", which holds its reader until release closes.
type stallHandler struct {
	sess    *Session
	stalled chan<- struct{}
	release <-chan struct{}
}

func (h *stallHandler) OnMessage(data []byte, binary bool) {
	if string(data) == "stall" {
		h.stalled <- struct{}{}
		<-h.release
		return
	}
	_ = h.sess.Send(NewMessage(data, binary))
}
func (h *stallHandler) OnClose(string, error) {}

// Handlers that block hold up their own connections only: the others' messages, sent while
// they block, all at once, are read and answered by other readers.
func TestEpollerBlockedHandlersHoldOnlyTheirConnections(t *testing.T) {
	const stalled, free = 3, 20
	stalls := make(chan struct{}, stalled)
	release := make(chan struct{})
	eio := NewServer(Options{}, func(s *Session) SessionHandler {
		return &stallHandler{sess: s, stalled: stalls, release: release}
	})
	hs := httptest.NewServer(eio)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		eio.Close()
		hs.Close()
	})
	ts := &testServer{Server: hs, eio: eio}
	conns := make([]*websocket.Conn, stalled+free)
	for i := range conns {
		conns[i] = dialWS(t, ts, "")
		readWS(t, conns[i])
	}
	waitFor(t, func() bool { return epollerLen(eio.epoll) == len(conns) })
	for _, c := range conns[:stalled] {
		writeWS(t, c, websocket.TextMessage, "4stall")
	}
	for range stalled {
		select {
		case <-stalls:
		case <-time.After(5 * time.Second):
			t.Fatal("a stalling message was not read while others stall")
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, free)
	for i, c := range conns[stalled:] {
		wg.Go(func() {
			msg := fmt.Sprintf("4free %d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
				errs <- fmt.Errorf("conn %d: got %q %v, want %q", i, got, err, msg)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	released = true
	close(release)
}
