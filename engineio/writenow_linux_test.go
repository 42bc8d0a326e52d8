package engineio

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests are about what Send writes itself, on the sending goroutine, to a WebSocket of
// the poller that keeps up (writeNowLocked), and what it leaves to the writer once the socket
// is full: the rest of a frame written in part, then the queue.

// epolledSession opens a WebSocket session and returns its client and the session, once the
// poller reads it (an echo came back): from then on Send may write to it itself.
func epolledSession(t *testing.T, ts *testServer) (*websocket.Conn, *Session) {
	t.Helper()
	return epolledSessionDialer(t, ts, websocket.DefaultDialer)
}

// epolledSessionDialer is epolledSession with the client's dialer.
func epolledSessionDialer(t *testing.T, ts *testServer, d *websocket.Dialer) (*websocket.Conn, *Session) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.url("transport=websocket"), "http")
	c, resp, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	_, open := readWS(t, c)
	sess := ts.eio.Session(parseOpen(t, open).SID)
	if sess == nil {
		t.Fatal("no session")
	}
	writeWS(t, c, websocket.TextMessage, "4echo")
	if _, got := readWSAnsweringPings(t, c); got != "4echo" {
		t.Fatalf("echo %q", got)
	}
	sess.mu.Lock()
	polled := sess.pc != nil
	sess.mu.Unlock()
	if !polled {
		t.Fatal("the session's WebSocket is not the poller's")
	}
	return c, sess
}

// TestSendPastAFullSocketInOrder: a client that stops reading while large messages are sent
// to it, then reads them as they keep coming, and pings all along (the server's pongs compete
// for the connection), gets every message whole and in order. The server's send buffer is
// made small, so that Send often writes a frame in part and leaves its rest, and then the
// queue, to the writer, which ends each time it has caught up.
func TestSendPastAFullSocketInOrder(t *testing.T) {
	ts := newTestServer(t, Options{MaxQueuedMessages: 4096, MaxPayload: 1 << 20})
	// The client's receive buffer is made small before it connects, so that its window
	// stays small.
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	c, sess := epolledSessionDialer(t, ts, &websocket.Dialer{NetDial: nd.Dial, HandshakeTimeout: 5 * time.Second})
	sess.mu.Lock()
	ws := sess.ws
	sess.mu.Unlock()
	if err := ws.(*net.TCPConn).SetWriteBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const count = 400
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf("4%d:%s", i, strings.Repeat(string(rune('a'+i%26)), rng.IntN(32<<10)))
	}
	// The client reads once a quarter of the messages is sent, checking each; the rest are
	// sent no more than window ahead of its reading, so that the writer catches up and ends
	// often, and Send writes the next message itself, often in part.
	const window = 4
	startReading := make(chan struct{})
	progress := make(chan struct{}, count)
	readErr := make(chan error, 1)
	go func() {
		<-startReading
		for i := 0; i < count; {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, got, err := c.ReadMessage()
			if err != nil {
				readErr <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			if string(got) == "2" { // a heartbeat
				continue
			}
			if string(got) != want[i] {
				at := 0
				for at < min(len(got), len(want[i])) && got[at] == want[i][at] {
					at++
				}
				readErr <- fmt.Errorf("message %d: got %d bytes, want %d, differing from byte %d on: %.16q", i, len(got), len(want[i]), at, got[at:])
				return
			}
			i++
			progress <- struct{}{}
		}
		readErr <- nil
	}()
	sawWriter := false
	read := 0
	for i := range want {
		if i == count/4 {
			if !sawWriter {
				t.Fatal("the socket never filled: no writer was started")
			}
			close(startReading)
		}
		for ; i > count/4 && read < i-window; read++ {
			select {
			case <-progress:
			case err := <-readErr:
				t.Fatalf("the client stopped reading: %v", err)
			}
		}
		if err := sess.Send(NewMessage([]byte(want[i][1:]), false)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		// The client's ping is answered on the poller's reader, through wmu.
		if err := c.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(5*time.Second)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		sess.mu.Lock()
		sawWriter = sawWriter || sess.writing
		sess.mu.Unlock()
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	// Nothing is left behind, and the session goes on.
	writeWS(t, c, websocket.TextMessage, "4after")
	if _, got := readWSAnsweringPings(t, c); got != "4after" {
		t.Fatalf("after the backlog: %q", got)
	}
}

// TestSendRacingClose: sessions are sent to from several goroutines while they are closed, by
// the server or by their client; Send returns nil or ErrSessionClosed, and every session ends
// once (run with -race).
func TestSendRacingClose(t *testing.T) {
	const sessions = 8
	ts := newTestServerCap(t, Options{MaxQueuedMessages: 1 << 16}, sessions)
	conns := make([]*websocket.Conn, sessions)
	sess := make([]*Session, sessions)
	for i := range sessions {
		conns[i], sess[i] = epolledSession(t, ts)
	}
	msg := NewMessage([]byte(strings.Repeat("m", 2000)), false)
	var wg sync.WaitGroup
	errs := make(chan error, 4*sessions)
	for i := range sessions {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 500 {
					err := sess[i].Send(msg)
					if errors.Is(err, ErrSessionClosed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				sess[i].Close()
			} else {
				conns[i].Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// A client closing its end may leave the queue full before the session notices.
		if !errors.Is(err, ErrSendQueueFull) {
			t.Errorf("send: %v", err)
		}
	}
	for i := range sessions {
		if i%2 == 1 {
			continue
		}
		ts.waitClose(t)
	}
	// The client-closed ones end when the server sees the connection close (or a write fail).
	for i := range sessions {
		if i%2 == 0 {
			continue
		}
		ts.waitClose(t)
	}
	if n := ts.eio.Len(); n != 0 {
		t.Errorf("%d sessions open, want none", n)
	}
}

// TestSendVolatileWrittenAtOnce: a volatile message to a client that keeps up is written, and
// arrives before what is sent after it.
func TestSendVolatileWrittenAtOnce(t *testing.T) {
	ts := newTestServer(t, Options{})
	c, sess := epolledSession(t, ts)
	for i := range 20 {
		if !sess.SendVolatile(NewMessage(fmt.Appendf(nil, "v%d", i), false)) {
			t.Fatalf("volatile message %d dropped with nothing queued", i)
		}
		if err := sess.Send(NewMessage(fmt.Appendf(nil, "m%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		for _, want := range []string{fmt.Sprintf("4v%d", i), fmt.Sprintf("4m%d", i)} {
			if _, got := readWSAnsweringPings(t, c); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
}

// TestSetWriteNowOff: with SetWriteNow(false), Send leaves every message to the writer, which
// still writes them all, in order.
func TestSetWriteNowOff(t *testing.T) {
	ts := newTestServer(t, Options{})
	c, sess := epolledSession(t, ts)
	ts.eio.SetWriteNow(false)
	msg := NewMessage([]byte("queued"), false)
	sess.mu.Lock()
	unwritten, rest := sess.writeNowLocked([]*Message{msg})
	sess.mu.Unlock()
	if len(unwritten) != 1 || rest != nil {
		t.Fatalf("writeNowLocked wrote with SetWriteNow(false): %d left, rest %q", len(unwritten), rest)
	}
	for i := range 10 {
		if err := sess.Send(NewMessage(fmt.Appendf(nil, "m%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, got := readWSAnsweringPings(t, c); got != fmt.Sprintf("4m%d", i) {
			t.Fatalf("got %q, want 4m%d", got, i)
		}
	}
	ts.eio.SetWriteNow(true)
	if err := sess.Send(msg); err != nil {
		t.Fatal(err)
	}
	if _, got := readWSAnsweringPings(t, c); got != "4queued" {
		t.Fatalf("got %q", got)
	}
}
