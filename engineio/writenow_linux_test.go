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
	sendPastAFullSocket(t, false)
}

// TestFlushPastAFullSocketInOrder is TestSendPastAFullSocketInOrder with the messages sent by
// EnqueueBatched and flushed every third one: the writers Flush starts find the socket full,
// and end and start again, often with several frames queued.
func TestFlushPastAFullSocketInOrder(t *testing.T) {
	sendPastAFullSocket(t, true)
}

// sendPastAFullSocket is TestSendPastAFullSocketInOrder, its messages sent with Send or, when
// batched, with EnqueueBatched and a Flush every third one.
func sendPastAFullSocket(t *testing.T, batched bool) {
	ts := newTestServer(t, Options{MaxQueuedMessages: 4096, MaxPayload: 1 << 20})
	if batched {
		deferUntilFlush(ts)
	}
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
		msg := NewMessage([]byte(want[i][1:]), false)
		if !batched {
			if err := sess.Send(msg); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		} else {
			if err := sess.EnqueueBatched(msg); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if i%3 == 2 || i == count-1 {
				ts.eio.Flush()
			}
		}
		// The client's ping is answered on the poller's reader, through wmu.
		if err := c.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(5*time.Second)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		sess.mu.Lock()
		sawWriter = sawWriter || (sess.writing && !sess.deferred)
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

// deferUntilFlush makes the server's deferred writers wait for Flush (or their session's end)
// alone, instead of starting by themselves after maxDeferral.
func deferUntilFlush(ts *testServer) {
	ts.eio.deferred.mu.Lock()
	ts.eio.deferred.max = time.Hour
	ts.eio.deferred.mu.Unlock()
}

// readMessages reads n messages (pings answered) and fails unless they are want(0)...want(n-1).
func readMessages(t *testing.T, c *websocket.Conn, n int, want func(int) string) {
	t.Helper()
	for i := range n {
		if _, got := readWSAnsweringPings(t, c); got != want(i) {
			t.Fatalf("message %d: got %q, want %q", i, got, want(i))
		}
	}
}

// TestEnqueueBatchedWaitsForFlush: EnqueueBatched writes nothing itself and defers the
// writer; a Send meanwhile queues behind what is deferred, not before it; Flush starts the
// writer, which writes it all, in order.
func TestEnqueueBatchedWaitsForFlush(t *testing.T) {
	ts := newTestServer(t, Options{})
	deferUntilFlush(ts)
	c, sess := epolledSession(t, ts)
	for i := range 10 {
		if err := sess.EnqueueBatched(NewMessage(fmt.Appendf(nil, "m%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sess.Send(NewMessage([]byte("m10"), false)); err != nil {
		t.Fatal(err)
	}
	sess.mu.Lock()
	deferred, queued := sess.deferred, len(sess.queue)
	sess.mu.Unlock()
	if !deferred || queued != 11 {
		t.Fatalf("before Flush: deferred %v, %d queued; want true, 11", deferred, queued)
	}
	ts.eio.Flush()
	readMessages(t, c, 11, func(i int) string { return fmt.Sprintf("4m%d", i) })
}

// TestEnqueueBatchedFlushesItself: a deferred writer starts by itself, without Flush.
func TestEnqueueBatchedFlushesItself(t *testing.T) {
	ts := newTestServer(t, Options{})
	c, sess := epolledSession(t, ts)
	if err := sess.EnqueueBatched(NewMessage([]byte("late"), false)); err != nil {
		t.Fatal(err)
	}
	readMessages(t, c, 1, func(int) string { return "4late" })
}

// TestEnqueueBatchedStartsAFullWrite: once a writev's worth of frames is queued, the writer
// starts without waiting for Flush.
func TestEnqueueBatchedStartsAFullWrite(t *testing.T) {
	ts := newTestServer(t, Options{})
	deferUntilFlush(ts)
	c, sess := epolledSession(t, ts)
	for i := range framesPerWrite {
		if err := sess.EnqueueBatched(NewMessage(fmt.Appendf(nil, "m%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	readMessages(t, c, framesPerWrite, func(i int) string { return fmt.Sprintf("4m%d", i) })
}

// TestEnqueueBatchedThenClose: a session closed, or a server shut down, with its writer
// deferred writes what was queued and the close packet without waiting for Flush.
func TestEnqueueBatchedThenClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(*testServer, *Session)
	}{
		{"session", func(_ *testServer, sess *Session) { sess.Close() }},
		{"server", func(ts *testServer, _ *Session) { go ts.eio.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			deferUntilFlush(ts)
			c, sess := epolledSession(t, ts)
			for i := range 3 {
				if err := sess.EnqueueBatched(NewMessage(fmt.Appendf(nil, "m%d", i), false)); err != nil {
					t.Fatal(err)
				}
			}
			tc.close(ts, sess)
			readMessages(t, c, 4, func(i int) string { return [...]string{"4m0", "4m1", "4m2", "1"}[i] })
			if err := sess.EnqueueBatched(NewMessage([]byte("after"), false)); !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("EnqueueBatched after the close: %v", err)
			}
		})
	}
}

// TestEnqueueBatchedRacingFlush: senders batching and sending, with Flush called all along
// and the writers ending and starting again, lose nothing and keep each sender's order.
func TestEnqueueBatchedRacingFlush(t *testing.T) {
	ts := newTestServer(t, Options{})
	c, sess := epolledSession(t, ts)
	const senders, each = 4, 300
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				send := sess.EnqueueBatched
				if i%3 == 0 {
					send = sess.Send
				}
				if err := send(NewMessage(fmt.Appendf(nil, "%d-%d", g, i), false)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for range 100000 {
			select {
			case <-stop:
				return
			default:
				ts.eio.Flush()
			}
		}
	}()
	next := make([]int, senders)
	for range senders * each {
		_, got := readWSAnsweringPings(t, c)
		var g, i int
		if _, err := fmt.Sscanf(got, "4%d-%d", &g, &i); err != nil || g < 0 || g >= senders {
			t.Fatalf("message %q", got)
		}
		if i != next[g] {
			t.Fatalf("from sender %d: got %d, want %d", g, i, next[g])
		}
		next[g]++
	}
	close(stop)
	<-flushed
	wg.Wait()
}
