//go:build linux

package engineio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// rawConn is one client TCP connection speaking HTTP/1.1 by hand, so that a test decides
// which requests share a connection.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, ts *testServer) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(req string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, req); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response, within 5 s.
func (c *rawConn) read() (*http.Response, string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func (c *rawConn) roundTrip(req string) (*http.Response, string) {
	c.t.Helper()
	c.send(req)
	return c.read()
}

func getReq(query string) string {
	return "GET /socket.io/?EIO=4&" + query + " HTTP/1.1\r\nHost: test\r\n\r\n"
}

func postReq(query, body string) string {
	return fmt.Sprintf("POST /socket.io/?EIO=4&%s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", query, len(body), body)
}

// heldCount is how many connections the server holds.
func heldCount(s *Server) int {
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	return len(s.held.conns)
}

// waitHeld waits, up to 5 s, for the server to hold n connections.
func waitHeld(t testing.TB, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for heldCount(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("held connections: %d, want %d", heldCount(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitParked waits, up to 5 s, for the session's GET to be parked on a held connection.
func waitParked(t testing.TB, s *Server, sid string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sess := s.Session(sid)
		if sess == nil {
			t.Fatalf("session %s is gone", sid)
		}
		sess.mu.Lock()
		parked := sess.parked.Load() != nil
		sess.mu.Unlock()
		if parked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the GET was not parked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rawHandshake(t testing.TB, c *rawConn) string {
	t.Helper()
	resp, body := c.roundTrip(getReq("transport=polling"))
	if resp.StatusCode != 200 {
		t.Fatalf("handshake: %d %s", resp.StatusCode, body)
	}
	return parseOpen(t, body).SID
}

// A poll that waits is parked on its connection, answered by the next message, and the
// connection's next polls are served there too; a request that is not a poll goes back to
// net/http, and the connection is held again by its next poll.
func TestHeldPollServesTheConnectionsNextRequests(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid

	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	waitHeld(t, ts.eio, 1)

	// The message comes on another connection; the echo answers the parked GET.
	other := dialRaw(t, ts)
	if resp, body := other.roundTrip(postReq(q, "4hello")); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	resp, body := c.read()
	if resp.StatusCode != 200 || body != "4hello" {
		t.Fatalf("parked GET: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if resp.Header.Get("Date") == "" || resp.Close {
		t.Fatalf("want a Date and a kept-alive connection: %v", resp.Header)
	}

	// The held connection's next POST and GET are served without net/http.
	if resp, body := c.roundTrip(postReq(q, "4again\x1e4twice")); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST on the held connection: %d %q", resp.StatusCode, body)
	}
	if resp, body := c.roundTrip(getReq(q)); body != "4again\x1e4twice" {
		t.Fatalf("GET on the held connection: %d %q", resp.StatusCode, body)
	}

	// An error is answered on the held connection as net/http would, and it stays open.
	resp, body = c.roundTrip(getReq("transport=polling&sid=nosuchsession"))
	if resp.StatusCode != 400 || !strings.Contains(body, `"code":1`) {
		t.Fatalf("unknown sid: %d %q", resp.StatusCode, body)
	}

	// Not a poll: net/http answers it (here the Engine.IO server, through the handoff).
	resp, body = c.roundTrip("GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: test\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, `"code":5`) {
		t.Fatalf("EIO=3 after handoff: %d %q", resp.StatusCode, body)
	}
	waitHeld(t, ts.eio, 0)

	// ... and the next poll that waits holds the connection again.
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	waitHeld(t, ts.eio, 1)
	if resp, _ := other.roundTrip(postReq(q, "4back")); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if _, body := c.read(); body != "4back" {
		t.Fatalf("GET held again: %q", body)
	}
	if got := ts.received(); strings.Join(got, ",") != "hello,again,twice,back" {
		t.Fatalf("server received %q", got)
	}
}

// Requests a client sends behind a parked GET on the same connection (HTTP/1.1 pipelining)
// wait for its answer, as net/http makes them wait for its handler, and are then answered in
// order.
func TestHeldPollPipelinedRequests(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid

	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	// While the GET is parked: a POST, then another GET, in one write.
	c.send(postReq(q, "4one") + getReq(q))
	sess := ts.eio.Session(sid)
	if err := sess.Send(NewMessage([]byte("first"), false)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"4first", "ok", "4one"} {
		if _, body := c.read(); body != want {
			t.Fatalf("answer %d: %q, want %q", i, body, want)
		}
	}
	if got := ts.received(); strings.Join(got, ",") != "one" {
		t.Fatalf("server received %q", got)
	}
}

// A client that goes away while its GET is parked releases it: the session lives on, and its
// next GET, on another connection, is no overlap.
func TestHeldPollClientGoneReleasesTheGET(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	c.nc.Close()
	waitHeld(t, ts.eio, 0)

	sess := ts.eio.Session(sid)
	if sess == nil {
		t.Fatal("the session ended with its connection")
	}
	sess.mu.Lock()
	active, parked := sess.getActive, sess.parked.Load()
	sess.mu.Unlock()
	if active || parked != nil {
		t.Fatalf("GET still pending: active %v, parked %v", active, parked != nil)
	}
	if err := sess.Send(NewMessage([]byte("later"), false)); err != nil {
		t.Fatal(err)
	}
	d := dialRaw(t, ts)
	if _, body := d.roundTrip(getReq(q)); body != "4later" {
		t.Fatalf("next GET: %q", body)
	}
	select {
	case ev := <-ts.closed:
		t.Fatalf("session closed: %+v", ev)
	default:
	}
}

// Requests the held path does not serve itself go to net/http with their bytes intact: a
// chunked POST, a closing GET, HTTP/1.0, and a header split over several writes is awaited.
func TestHeldPollHandsOffWhatItDoesNotServe(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid

	holdPoll(t, ts, c, sid)
	resp, body := c.roundTrip("POST /socket.io/?EIO=4&" + q + " HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n4chunk\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("chunked POST: %d %q", resp.StatusCode, body)
	}
	waitHeld(t, ts.eio, 0)
	if _, body := c.roundTrip(getReq(q)); body != "4chunk" { // the echo, answered by net/http
		t.Fatalf("GET after the chunked POST: %q", body)
	}

	holdPoll(t, ts, c, sid)
	// A header in pieces: the held path waits for the rest.
	req := postReq(q, "4split")
	for i := 0; i < len(req); i += 7 {
		c.send(req[i:min(i+7, len(req))])
	}
	if resp, body := c.read(); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("split POST: %d %q", resp.StatusCode, body)
	}
	if heldCount(ts.eio) != 1 {
		t.Fatal("a split POST was handed off")
	}

	resp, body = c.roundTrip("GET /socket.io/?EIO=4&" + q + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || body != "4split" || !resp.Close {
		t.Fatalf("closing GET: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	waitHeld(t, ts.eio, 0)
	if got := ts.received(); strings.Join(got, ",") != "chunk,split" {
		t.Fatalf("server received %q", got)
	}
}

// Server.Close answers a parked GET with the close packet, then closes the connection.
func TestHeldPollServerClose(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	c.send(getReq("transport=polling&sid=" + sid))
	waitParked(t, ts.eio, sid)
	ts.eio.Close()
	if _, body := c.read(); body != "1" {
		t.Fatalf("parked GET at close: %q", body)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close packet: %v, want EOF", err)
	}
	if n := heldCount(ts.eio); n != 0 {
		t.Fatalf("%d connections still held", n)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonServerShutdown {
		t.Fatalf("close reason %q", ev.reason)
	}
}

// A held connection that starts a request and does not finish it, or carries none, is closed
// by the sweep.
func TestHeldPollSweepsStalledConnections(t *testing.T) {
	ts := newTestServer(t, Options{PollingHeaderTimeout: 50 * time.Millisecond, PollingIdleTimeout: 200 * time.Millisecond})
	for _, partial := range []string{"GET /socket.io/?EIO=4&transport=pol", ""} {
		c, _, _ := heldPollConn(t, ts)
		c.send(partial)
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("stalled connection (%q): %v, want EOF", partial, err)
		}
		waitHeld(t, ts.eio, 0)
	}
}

// A held connection keeps no write deadline between answers: one that had passed would fail
// the next answer, written without waiting.
func TestHeldPollAnswersLongAfterTheLastWrite(t *testing.T) {
	// Short, yet long enough that no write of the test, on a loaded machine, outlasts it.
	const writeTimeout = 250 * time.Millisecond
	ts := newTestServer(t, Options{WriteTimeout: writeTimeout})
	c, other := dialRaw(t, ts), dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	if _, body := other.roundTrip(postReq(q, "4a")); body != "ok" {
		t.Fatalf("POST: %q", body)
	}
	if _, body := c.read(); body != "4a" {
		t.Fatalf("parked GET: %q", body)
	}
	for i, m := range []string{"4b", "4c"} {
		if _, body := c.roundTrip(postReq(q, m)); body != "ok" {
			t.Fatalf("POST %d on the held connection: %q", i, body)
		}
		// Longer than WriteTimeout: a deadline left by the last write would have passed.
		time.Sleep(writeTimeout + 50*time.Millisecond)
		if _, body := c.roundTrip(getReq(q)); body != m {
			t.Fatalf("GET %d: %q, want %q", i, body, m)
		}
	}
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	time.Sleep(writeTimeout + 50*time.Millisecond) // past the last answer's WriteTimeout, as above
	if _, body := other.roundTrip(postReq(q, "4d")); body != "ok" {
		t.Fatalf("POST: %q", body)
	}
	if _, body := c.read(); body != "4d" {
		t.Fatalf("parked GET: %q", body)
	}
	select {
	case ev := <-ts.closed:
		t.Fatalf("session closed: %+v", ev)
	default:
	}
}

// BenchmarkPollingDelivery measures long-polling clients receiving one message each, with
// every pending GET held by the epoller (held=true, as siobridge runs) and waiting in its
// net/http handler (held=false). Each op queues a message to every session, reads every
// answer and sends every client's next GET. It reports the deliveries per second, the
// allocations per delivery (server and clients), and what a pending poll costs the server:
// live heap plus goroutine stacks per session ("B/poll"), and goroutines per session.
func BenchmarkPollingDelivery(b *testing.B) {
	const clients = 500
	for _, held := range []bool{false, true} {
		b.Run(fmt.Sprintf("held=%v", held), func(b *testing.B) {
			ts := newTestServerCap(b, Options{DisableWebSocketPoller: !held, PingInterval: time.Hour}, clients)
			conns := make([]*rawConn, clients)
			sessions := make([]*Session, clients)
			heap0, g0 := liveHeap()
			for i := range conns {
				c := dialRaw(b, ts)
				sid := rawHandshake(b, c)
				conns[i], sessions[i] = c, ts.eio.Session(sid)
				c.send(getReq("transport=polling&sid=" + sid))
			}
			for _, s := range sessions {
				waitPending(b, s, held)
			}
			heap1, g1 := liveHeap()
			msg := NewMessage([]byte("news"), false)
			gets := make([][]byte, clients)
			for i, s := range sessions {
				gets[i] = []byte(getReq("transport=polling&sid=" + s.ID()))
			}
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			ops := 0
			for b.Loop() {
				if ops%64 == 0 {
					// A minute for each client's next 64 answers: a lost one fails the
					// benchmark instead of hanging it.
					for _, c := range conns {
						_ = c.nc.SetReadDeadline(time.Now().Add(time.Minute))
					}
				}
				ops++
				for _, s := range sessions {
					if err := s.Send(msg); err != nil {
						b.Fatal(err)
					}
				}
				for i, c := range conns {
					if body := c.readFast(); string(body) != "4news" {
						b.Fatalf("client %d: %q", i, body)
					}
					if _, err := c.nc.Write(gets[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			deliveries := float64(b.N * clients)
			b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/deliveries, "allocs/delivery")
			b.ReportMetric(float64(heap1-heap0)/clients, "B/poll")
			b.ReportMetric(float64(g1-g0)/clients, "goroutines/poll")
			for _, c := range conns {
				c.nc.Close()
			}
		})
	}
}

// readFast reads one response's body, allocating nothing: a benchmark's client, which must
// cost little next to the server. It expects a Content-Length and no chunking.
func (c *rawConn) readFast() []byte {
	c.t.Helper()
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			c.t.Fatalf("read response: %v", err)
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				c.t.Fatalf("Content-Length %q", v)
			}
			length = n
		}
	}
	if length < 0 || length > c.br.Size() {
		c.t.Fatalf("response without a usable Content-Length (%d)", length)
	}
	body, err := c.br.Peek(length)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	_, _ = c.br.Discard(length)
	return body
}

// waitPending waits, up to 5 s, for the session's GET to be pending: parked on a held
// connection, or waiting in its handler.
func waitPending(tb testing.TB, s *Session, held bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		ok := s.getActive && (!held || s.parked.Load() != nil)
		s.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the GET is not pending")
		}
		time.Sleep(time.Millisecond)
	}
}

// liveHeap returns the live heap plus the goroutine stacks in use, after a collection, and
// the number of goroutines.
func liveHeap() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
}

// Behind a parked GET a client may pipeline one header's worth of bytes; more closes the
// connection, and the session's GET with it, so that a parked poll never holds more of a
// client's bytes than that.
func TestHeldPollBoundsWhatComesBehindAParkedGET(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	junk := strings.Repeat("x", 16<<10)
	for range 5 { // 80 KiB, past heldhttp.MaxHeaderBytes
		if _, err := io.WriteString(c.nc, junk); err != nil {
			break // closed already
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the connection answered instead of closing")
	}
	waitHeld(t, ts.eio, 0)
	sess := ts.eio.Session(sid)
	if sess == nil {
		t.Fatal("the session ended with its connection")
	}
	sess.mu.Lock()
	active := sess.getActive
	sess.mu.Unlock()
	if active {
		t.Fatal("the GET is still pending on a closed connection")
	}
}

// heldBuffered is how many bytes the server's held connections have read and not served.
func heldBuffered(s *Server) int {
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	n := 0
	for hc := range s.held.conns {
		hc.mu.Lock()
		n += hc.in.Len()
		hc.mu.Unlock()
	}
	return n
}

// blockingHandler holds the reader in OnMessage until release is closed.
type blockingHandler struct {
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHandler) OnMessage([]byte, bool) {
	h.entered <- struct{}{}
	<-h.release
}
func (h *blockingHandler) OnClose(string, error) {}

// A held connection closed while one of its requests is being served by another goroutine
// than the epoller's reader (here: the client sends more than it may behind a POST whose
// handler is busy) ends that request's turn quietly.
func TestHeldPollClosedWhileServing(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	handoff := NewHandoffListener(nil)
	// A small MaxPayload: what may wait behind a request is a header and a body.
	eio := NewServer(Options{PollingHandoff: handoff.Handoff, PollingPath: "/socket.io/", MaxPayload: 1000}, func(*Session) SessionHandler { return h })
	hs := httptest.NewServer(eio)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Config.Serve(handoff)
	}()
	released := false
	t.Cleanup(func() {
		if !released {
			close(h.release)
		}
		eio.Close()
		hs.Close()
		handoff.Close()
		<-served
	})
	ts := &testServer{Server: hs, eio: eio}
	c, sid, q := heldPollConn(t, ts)
	// A GET parks, a POST comes behind it; the GET's answer serves the POST on the goroutine
	// that answered, while the epoller goes on reading the connection.
	c.send(getReq(q))
	waitParked(t, eio, sid)
	c.send(postReq(q, "4busy"))
	// The POST must be read while the GET is parked, for the answer to serve it.
	deadline := time.Now().Add(5 * time.Second)
	for heldBuffered(eio) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the POST was not read behind the parked GET")
		}
		time.Sleep(time.Millisecond)
	}
	if err := eio.Session(sid).Send(NewMessage([]byte("y"), false)); err != nil {
		t.Fatal(err)
	}
	if _, body := c.read(); body != "4y" {
		t.Fatalf("GET: %q", body)
	}
	select {
	case <-h.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the POST did not reach the handler")
	}
	for range 5 { // 80 KiB behind the POST: the connection is closed
		if _, err := io.WriteString(c.nc, strings.Repeat("x", 16<<10)); err != nil {
			break
		}
	}
	waitHeld(t, eio, 0)
	released = true
	close(h.release)
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("the closed connection answered")
	}
	if eio.Session(sid) == nil {
		t.Fatal("the session ended with its connection")
	}
}

// panicHandler echoes messages, but panics on "boom", as a handler with a bug would.
type panicHandler struct{ sess *Session }

func (h *panicHandler) OnMessage(data []byte, binary bool) {
	if string(data) == "boom" {
		panic("handler bug")
	}
	_ = h.sess.Send(NewMessage(data, binary))
}
func (h *panicHandler) OnClose(string, error) {}

// newPanicServer is a test server whose sessions panic on "boom", logging to the buffer.
func newPanicServer(t *testing.T) (*testServer, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	handoff := NewHandoffListener(nil)
	eio := NewServer(Options{PollingHandoff: handoff.Handoff, PollingPath: "/socket.io/",
		Logger: slog.New(slog.NewTextHandler(logs, nil))},
		func(s *Session) SessionHandler { return &panicHandler{sess: s} })
	hs := httptest.NewServer(eio)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Config.Serve(handoff)
	}()
	t.Cleanup(func() {
		eio.Close()
		hs.Close()
		handoff.Close()
		<-served
	})
	return &testServer{Server: hs, eio: eio}, logs
}

// A panic while serving a held connection closes that connection and is logged with its
// stack; the server goes on serving the others, and the session lives on.
func TestHeldPollPanicClosesOnlyItsConnection(t *testing.T) {
	ts, logs := newPanicServer(t)
	c, _, q := heldPollConn(t, ts)
	// On the held connection, read and served by the epoller.
	c.send(postReq(q, "4boom"))
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c.br); err != nil || len(b) > 0 {
		t.Fatalf("after the panic the connection answered %q (%v); want it closed", b, err)
	}
	waitHeld(t, ts.eio, 0)
	if log := logs.String(); !strings.Contains(log, "panic serving a held connection") || !strings.Contains(log, "panicHandler") {
		t.Fatalf("the panic was not logged with its stack:\n%s", log)
	}
	// The server and the session go on.
	c2 := dialRaw(t, ts)
	c2.send(postReq(q, "4after"))
	if resp, body := c2.read(); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST after the panic: %d %q", resp.StatusCode, body)
	}
	if _, body := c2.roundTrip(getReq(q)); body != "4after" {
		t.Fatalf("GET after the panic: %q", body)
	}
}

// A panic while handling what a WebSocket sent, read by the epoller, ends that session and is
// logged; the server's other WebSockets go on.
func TestEpollerPanicClosesOnlyItsSession(t *testing.T) {
	ts, logs := newPanicServer(t)
	other := dialWS(t, ts, "")
	bad := dialWS(t, ts, "")
	for _, c := range []*websocket.Conn{other, bad} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || msg[0] != '0' {
			t.Fatalf("open packet: %q %v", msg, err)
		}
	}
	if err := bad.WriteMessage(websocket.TextMessage, []byte("4boom")); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := bad.ReadMessage(); err != nil {
			break // closed by the server
		}
	}
	if log := logs.String(); !strings.Contains(log, "panic handling what a connection sent") || !strings.Contains(log, "panicHandler") {
		t.Fatalf("the panic was not logged with its stack:\n%s", log)
	}
	if err := other.WriteMessage(websocket.TextMessage, []byte("4still")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := other.ReadMessage(); err != nil || string(msg) != "4still" {
		t.Fatalf("the other session: %q %v", msg, err)
	}
}

// A GET taken from net/http as the server closes, before the epoller holds its connection,
// is answered with the close packet (not dropped, which a client would take for a network
// error and poll again, into "Session ID unknown").
func TestHeldPollTakenWhileTheServerCloses(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	sess := ts.eio.Session(sid)
	// The GET, as hijackPoll leaves it: active, its connection taken.
	client, server := tcpPair(t)
	sess.mu.Lock()
	sess.getActive = true
	sess.mu.Unlock()
	hc := &heldConn{srv: ts.eio, nc: server, remote: "test", since: time.Now(), state: heldServing}
	ts.eio.Close() // closes the session, then refuses held connections
	sess.holdPoll(hc)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("the GET was not answered: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "1" {
		t.Fatalf("the GET got %d %q, want the close packet", res.StatusCode, body)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonServerShutdown {
		t.Fatalf("close %+v", ev)
	}
}

// heldPollConn opens a polling session whose connection the server holds: a GET parked, then
// answered with "4x" (a message sent to the session), after which the epoller has the
// connection. It returns the client's connection, the session id and the query of its
// requests.
func heldPollConn(t *testing.T, ts *testServer) (c *rawConn, sid, q string) {
	t.Helper()
	c = dialRaw(t, ts)
	sid = rawHandshake(t, c)
	holdPoll(t, ts, c, sid)
	return c, sid, "transport=polling&sid=" + sid
}

// holdPoll has session sid's GET on c parked, then answered with "4x", and waits until the
// poller holds c, the server's only held connection.
func holdPoll(t *testing.T, ts *testServer, c *rawConn, sid string) {
	t.Helper()
	c.send(getReq("transport=polling&sid=" + sid))
	waitParked(t, ts.eio, sid)
	if err := ts.eio.Session(sid).Send(NewMessage([]byte("x"), false)); err != nil {
		t.Fatal(err)
	}
	if _, body := c.read(); body != "4x" {
		t.Fatalf("GET: %q", body)
	}
	waitHeld(t, ts.eio, 1)
}

// theHeldConn returns the server's only held connection.
func theHeldConn(t *testing.T, s *Server) *heldConn {
	t.Helper()
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	if len(s.held.conns) != 1 {
		t.Fatalf("held connections: %d, want 1", len(s.held.conns))
	}
	for hc := range s.held.conns {
		return hc
	}
	return nil
}

// A request that comes while the reader that has the connection is still serving the one
// before it (its handler is busy) is an event for a connection already read: that reader
// reads it before it lets go, and both are answered, in order.
func TestHeldPollRequestWhileTheLastIsServed(t *testing.T) {
	ts := newTestServer(t, Options{})
	c, _, q := heldPollConn(t, ts)
	hc := theHeldConn(t, ts.eio)
	waitFor(t, func() bool { return hc.pc.turn.Load() == turnIdle })

	// The echo handler takes ts.mu: the POST's reader waits there.
	ts.mu.Lock()
	locked := true
	defer func() {
		if locked {
			ts.mu.Unlock()
		}
	}()
	c.send(postReq(q, "4one"))
	waitFor(t, func() bool {
		hc.mu.Lock()
		defer hc.mu.Unlock()
		return hc.state == heldServing && hc.in.Len() > 0
	})
	c.send(getReq(q))
	waitFor(t, func() bool { return hc.pc.turn.Load() == turnAgain })
	locked = false
	ts.mu.Unlock()

	for i, want := range []string{"ok", "4one"} {
		if _, body := c.read(); body != want {
			t.Fatalf("answer %d: %q, want %q", i, body, want)
		}
	}
	waitFor(t, func() bool { return hc.pc.turn.Load() == turnIdle })
}

// The last bytes a client sends and the end of its stream can come as one edge: the held
// connection sees the end all the same, and is closed, not left waiting for the rest of a
// request until its header timeout.
func TestHeldConnSeesTheEndBehindItsLastBytes(t *testing.T) {
	ts := newTestServer(t, Options{})
	cc, sc := tcpPair(t)
	if _, err := io.WriteString(cc, "GET /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	_ = cc.(*net.TCPConn).CloseWrite()
	// Both are in the socket before it is registered: its one event carries both.
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var pollErr error
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		var n int
		for {
			n, pollErr = unix.Poll(fds, 5000)
			if pollErr != unix.EINTR {
				break
			}
		}
		if pollErr == nil && n == 0 {
			pollErr = errors.New("no end of stream within 5 s")
		}
	})
	if pollErr != nil {
		t.Fatal(pollErr)
	}
	hc := &heldConn{srv: ts.eio, nc: sc, remote: sc.RemoteAddr().String(), since: time.Now()}
	hc.register() // false if the epoller's reader closed it already
	waitHeld(t, ts.eio, 0)
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := cc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %d bytes, %v; want the end of the stream", n, err)
	}
}

// A client that closes its connection while a parked GET's answer is still being written (it
// is larger than the socket takes at once) ends the write and its session's transport; the
// connection is no longer held.
func TestHeldPollClientClosesMidAnswer(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialRaw(t, ts)
	sid := rawHandshake(t, c)
	q := "transport=polling&sid=" + sid
	c.send(getReq(q))
	waitParked(t, ts.eio, sid)
	waitHeld(t, ts.eio, 1)
	big := bytes.Repeat([]byte("x"), 32<<20)
	if err := ts.eio.Session(sid).Send(NewMessage(big, false)); err != nil {
		t.Fatal(err)
	}
	// Some of the answer, then the client goes.
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.br, make([]byte, 64<<10)); err != nil {
		t.Fatalf("the answer's start: %v", err)
	}
	c.nc.Close()
	if ev := ts.waitClose(t); ev.reason != ReasonTransportError && ev.reason != ReasonTransportClose {
		t.Fatalf("closed with %q (%v), want a transport error or close", ev.reason, ev.err)
	}
	waitHeld(t, ts.eio, 0)
}

// tcpPair returns the two ends of a loopback TCP connection, both closed when the test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
