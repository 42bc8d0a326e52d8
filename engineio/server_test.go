package engineio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type closeEvent struct {
	sid    string
	reason string
	err    error
}

// echoHandler sends every message back to its session and reports each close.
type echoHandler struct {
	sess   *Session
	closed chan<- closeEvent
	mu     *sync.Mutex
	got    *[]string
}

func (h *echoHandler) OnMessage(data []byte, binary bool) {
	h.mu.Lock()
	*h.got = append(*h.got, string(data))
	h.mu.Unlock()
	_ = h.sess.Send(NewMessage(data, binary))
}

func (h *echoHandler) OnClose(reason string, err error) {
	select {
	case h.closed <- closeEvent{h.sess.ID(), reason, err}:
	case <-time.After(10 * time.Second):
		// A test that closes more sessions than its channel holds, without reading them, would
		// otherwise hang in Server.Close until the test binary's timeout.
		panic(fmt.Sprintf("test server: no room for session %s's close event (%s): use newTestServerCap", h.sess.ID(), reason))
	}
}

type testServer struct {
	*httptest.Server
	eio    *Server
	closed chan closeEvent
	mu     sync.Mutex
	got    []string
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	return newTestServerCap(t, opts, 16)
}

// newTestServerCap is newTestServer with room for closes sessions' close events: a session's
// OnClose waits for room, and Close for every session's.
func newTestServerCap(t testing.TB, opts Options, closes int) *testServer {
	t.Helper()
	// Polls are held by the epoller, as siobridge runs them, unless the test turns the epoller
	// off (then every poll waits in its handler, as on other systems).
	return newTestServerHold(t, opts, closes, !opts.DisableWebSocketPoller)
}

// newTestServerHold is newTestServerCap with polls held by the epoller (hold) or waiting in
// their handlers (as siobridge runs with polling_poller = false), whatever the WebSocket
// epoller does.
func newTestServerHold(t testing.TB, opts Options, closes int, hold bool) *testServer {
	t.Helper()
	ts := &testServer{closed: make(chan closeEvent, closes)}
	handoff := NewHandoffListener(nil)
	if opts.PollingHandoff == nil && hold {
		opts.PollingHandoff, opts.PollingPath = handoff.Handoff, "/socket.io/"
	}
	ts.eio = NewServer(opts, func(s *Session) SessionHandler {
		return &echoHandler{sess: s, closed: ts.closed, mu: &ts.mu, got: &ts.got}
	})
	ts.Server = httptest.NewServer(ts.eio)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = ts.Server.Config.Serve(handoff)
	}()
	t.Cleanup(func() {
		ts.eio.Close()
		ts.Server.Close()
		handoff.Close()
		<-served
	})
	return ts
}

func (ts *testServer) received() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.got...)
}

const (
	// pongWait is the ping timeout of tests whose sessions must live on by answering pings:
	// far longer than a loaded machine takes to answer one, short enough for a test to wait
	// for it to pass once.
	pongWait = 3 * time.Second
	// closeWait bounds the wait for a session to close, a ping timeout of pongWait included.
	closeWait = 15 * time.Second
)

func (ts *testServer) waitClose(t *testing.T) closeEvent {
	t.Helper()
	select {
	case ev := <-ts.closed:
		return ev
	case <-time.After(closeWait):
		t.Fatalf("no session closed within %v", closeWait)
		return closeEvent{}
	}
}

func (ts *testServer) url(query string) string {
	return ts.URL + "/socket.io/?EIO=4&" + query
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	status, b, err := request(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// request is do for a goroutine other than the test's, which must not call t.Fatal: it
// returns the error.
func request(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: read the body: %w", method, url, err)
	}
	return resp.StatusCode, string(b), nil
}

// pollAsync sends a GET for the session's next payload on a goroutine of its own; pollResult
// waits for its body.
func pollAsync(ts *testServer, sid string) <-chan pollAnswer {
	ch := make(chan pollAnswer, 1)
	go func() {
		_, body, err := request("GET", ts.url("transport=polling&sid="+sid), "")
		ch <- pollAnswer{body, err}
	}()
	return ch
}

type pollAnswer struct {
	body string
	err  error
}

func pollResult(t *testing.T, ch <-chan pollAnswer) string {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("pending GET: %v", a.err)
		}
		return a.body
	case <-time.After(closeWait):
		t.Fatalf("the pending GET had no answer within %v", closeWait)
		return ""
	}
}

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t testing.TB, body string) openPacket {
	t.Helper()
	if !strings.HasPrefix(body, "0{") {
		t.Fatalf("want an open packet, got %q", body)
	}
	var keys map[string]any
	if err := json.Unmarshal([]byte(body[1:]), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Fatalf("open packet must have exactly 5 keys, got %v", keys)
	}
	var op openPacket
	if err := json.Unmarshal([]byte(body[1:]), &op); err != nil {
		t.Fatal(err)
	}
	return op
}

func handshakePolling(t *testing.T, ts *testServer) string {
	t.Helper()
	status, body := do(t, "GET", ts.url("transport=polling"), "")
	if status != 200 {
		t.Fatalf("handshake: %d %s", status, body)
	}
	return parseOpen(t, body).SID
}

func TestPollingHandshakeAndEcho(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: 100 * time.Millisecond, PingTimeout: pongWait, MaxPayload: 5000})
	status, body := do(t, "GET", ts.url("transport=polling&t=abc"), "")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	op := parseOpen(t, body)
	if len(op.SID) != 20 || len(op.Upgrades) != 1 || op.Upgrades[0] != "websocket" ||
		op.PingInterval != 100 || op.PingTimeout != int(pongWait.Milliseconds()) || op.MaxPayload != 5000 {
		t.Fatalf("open packet %+v", op)
	}
	sid := op.SID
	status, body = do(t, "POST", ts.url("transport=polling&sid="+sid), "4hello\x1ebAQID\x1e4é☃")
	if status != 200 || body != "ok" {
		t.Fatalf("post: %d %q", status, body)
	}
	// A ping may have come meanwhile, before or after the echo: it is answered.
	if body = pollAnsweringPings(t, ts, sid); body != "4hello\x1ebAQID\x1e4é☃" {
		t.Fatalf("poll: %q", body)
	}
	if got := ts.received(); len(got) != 3 || got[1] != "\x01\x02\x03" {
		t.Fatalf("handler got %q", got)
	}
	// The next poll waits for the ping; answering it keeps the session open.
	for i := 0; i < 3; i++ {
		_, body = do(t, "GET", ts.url("transport=polling&sid="+sid), "")
		if body != "2" {
			t.Fatalf("want a ping, got %q", body)
		}
		if status, body := do(t, "POST", ts.url("transport=polling&sid="+sid), "3"); status != 200 || body != "ok" {
			t.Fatalf("pong %d: %d %q", i, status, body)
		}
	}
	if ts.eio.Session(sid) == nil {
		t.Fatal("session closed although pongs were sent")
	}
	// Not answering closes it.
	_, body = do(t, "GET", ts.url("transport=polling&sid="+sid), "")
	if body != "2" {
		t.Fatalf("want a ping, got %q", body)
	}
	if ev := ts.waitClose(t); ev.sid != sid || ev.reason != ReasonPingTimeout {
		t.Fatalf("close %+v, want %s closed with ping timeout", ev, sid)
	}
	if status, _ := do(t, "GET", ts.url("transport=polling&sid="+sid), ""); status != 400 {
		t.Fatalf("poll after close: %d", status)
	}
}

// pollAnsweringPings polls the session once and returns the payload without its pings, which
// it answers.
func pollAnsweringPings(t *testing.T, ts *testServer, sid string) string {
	t.Helper()
	status, body := do(t, "GET", ts.url("transport=polling&sid="+sid), "")
	if status != 200 {
		t.Fatalf("poll: %d %q", status, body)
	}
	var rest []string
	for _, p := range strings.Split(body, "\x1e") {
		if p != "2" {
			rest = append(rest, p)
			continue
		}
		if status, body := do(t, "POST", ts.url("transport=polling&sid="+sid), "3"); status != 200 || body != "ok" {
			t.Fatalf("pong: %d %q", status, body)
		}
	}
	return strings.Join(rest, "\x1e")
}

func TestRequestErrors(t *testing.T) {
	ts := newTestServer(t, Options{AllowRequest: func(r *http.Request) error {
		if r.URL.Query().Get("refuse") != "" {
			return errors.New("go away")
		}
		return nil
	}})
	sid := handshakePolling(t, ts)
	cases := []struct {
		name, method, url string
		status, code      int
		message           string
	}{
		{"no EIO", "GET", ts.URL + "/socket.io/?transport=polling", 400, 5, "Unsupported protocol version"},
		{"EIO 3", "GET", ts.URL + "/socket.io/?EIO=3&transport=polling", 400, 5, "Unsupported protocol version"},
		{"unknown transport", "GET", ts.url("transport=carrier-pigeon"), 400, 0, "Transport unknown"},
		{"unknown sid", "GET", ts.url("transport=polling&sid=nope"), 400, 1, "Session ID unknown"},
		{"POST handshake", "POST", ts.url("transport=polling"), 400, 2, "Bad handshake method"},
		{"websocket without upgrade", "GET", ts.url("transport=websocket"), 400, 3, "Bad request"},
		{"bad method", "PUT", ts.url("transport=polling&sid=" + sid), 400, 3, "Bad request"},
		{"refused", "GET", ts.url("transport=polling&refuse=1"), 403, 4, "go away"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := do(t, c.method, c.url, "")
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if status != c.status || e.Code != c.code || e.Message != c.message {
				t.Fatalf("got %d %+v, want %d %d %q", status, e, c.status, c.code, c.message)
			}
		})
	}
	if ts.eio.Session(sid) == nil {
		t.Fatal("a bad request on its own disturbed an unrelated session")
	}
}

func TestOverlappingPollClosesSession(t *testing.T) {
	ts := newTestServer(t, Options{})
	sid := handshakePolling(t, ts)
	first := pollAsync(ts, sid)
	// Wait until the first GET is pending.
	waitPendingGET(t, ts, sid)
	status, _ := do(t, "GET", ts.url("transport=polling&sid="+sid), "")
	if status != 400 {
		t.Fatalf("second GET: %d", status)
	}
	if body := pollResult(t, first); body != "1" {
		t.Fatalf("pending GET got %q, want a close packet", body)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrRequestOverlap) {
		t.Fatalf("close %+v", ev)
	}
}

func TestPostLimitsAndParseErrors(t *testing.T) {
	ts := newTestServer(t, Options{MaxPayload: 100})
	cases := []struct {
		name   string
		body   string
		status int
		reason string
	}{
		{"too large", "4" + strings.Repeat("x", 100), 413, ReasonTransportError},
		{"unknown type", "4ok\x1e9nope", 400, ReasonParseError},
		{"empty packet", "4ok\x1e", 400, ReasonParseError},
		{"bad base64", "4ok\x1eb!!!", 400, ReasonParseError},
		{"client ping", "2", 200, ReasonTransportError},
		{"close packet", "1", 200, ReasonTransportClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sid := handshakePolling(t, ts)
			before := len(ts.received())
			status, _ := do(t, "POST", ts.url("transport=polling&sid="+sid), c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d", status, c.status)
			}
			if ev := ts.waitClose(t); ev.reason != c.reason {
				t.Fatalf("reason %q, want %q", ev.reason, c.reason)
			}
			if got := ts.received(); len(got) != before {
				t.Fatalf("a refused payload delivered %q", got[before:])
			}
		})
	}
}

func dialWS(t *testing.T, ts *testServer, query string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.url("transport=websocket&"+query), "http")
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readWS(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func TestWebSocketDirect(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: 100 * time.Millisecond, PingTimeout: pongWait, MaxPayload: 1000})
	c := dialWS(t, ts, "")
	_, open := readWS(t, c)
	op := parseOpen(t, open)
	if len(op.Upgrades) != 0 {
		t.Fatalf("upgrades over websocket must be empty: %v", op.Upgrades)
	}
	writeWS(t, c, websocket.TextMessage, "4héllo")
	if typ, msg := readWSAnsweringPings(t, c); typ != websocket.TextMessage || msg != "4héllo" {
		t.Fatalf("echo %d %q", typ, msg)
	}
	writeWS(t, c, websocket.BinaryMessage, "\x00\x01\x02")
	if typ, msg := readWSAnsweringPings(t, c); typ != websocket.BinaryMessage || msg != "\x00\x01\x02" {
		t.Fatalf("binary echo %d %q", typ, msg)
	}
	// Pings come and are answered.
	for i := 0; i < 3; i++ {
		if _, msg := readWS(t, c); msg != "2" {
			t.Fatalf("want ping, got %q", msg)
		}
		writeWS(t, c, websocket.TextMessage, "3")
	}
	// A message above maxPayload ends the session.
	writeWS(t, c, websocket.TextMessage, "4"+strings.Repeat("x", 1000))
	if ev := ts.waitClose(t); ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrPayloadTooLarge) {
		t.Fatalf("close %+v", ev)
	}
}

func writeWS(t *testing.T, c *websocket.Conn, typ int, msg string) {
	t.Helper()
	if err := c.WriteMessage(typ, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readWSAnsweringPings is readWS for the next message that is not a ping; it answers those.
func readWSAnsweringPings(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	for range 100 {
		typ, msg := readWS(t, c)
		if typ != websocket.TextMessage || msg != "2" {
			return typ, msg
		}
		writeWS(t, c, websocket.TextMessage, "3")
	}
	t.Fatal("100 pings and nothing else")
	return 0, ""
}

func TestWebSocketPingTimeout(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	c := dialWS(t, ts, "")
	readWS(t, c)
	if _, msg := readWS(t, c); msg != "2" {
		t.Fatalf("want ping, got %q", msg)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonPingTimeout {
		t.Fatalf("reason %q", ev.reason)
	}
	// The server closes the connection.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
}

func TestUpgradeFromPolling(t *testing.T) {
	ts := newTestServer(t, Options{})
	sid := handshakePolling(t, ts)
	pending := pollAsync(ts, sid)
	waitPendingGET(t, ts, sid)
	c := dialWS(t, ts, "sid="+sid)
	_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if _, msg := readWS(t, c); msg != "3probe" {
		t.Fatalf("want 3probe, got %q", msg)
	}
	if body := pollResult(t, pending); body != "6" {
		t.Fatalf("pending poll got %q, want noop", body)
	}
	// Something queued while the client pauses polling arrives over the WebSocket.
	_ = ts.eio.Session(sid).Send(NewMessage([]byte("queued"), false))
	_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
	if _, msg := readWS(t, c); msg != "4queued" {
		t.Fatalf("got %q", msg)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("4after"))
	if _, msg := readWS(t, c); msg != "4after" {
		t.Fatalf("got %q", msg)
	}
	if tr := ts.eio.Session(sid).Transport(); tr != TransportWebSocket {
		t.Fatalf("transport %q", tr)
	}
	if status, _ := do(t, "GET", ts.url("transport=polling&sid="+sid), ""); status != 400 {
		t.Fatalf("polling after upgrade: %d", status)
	}
}

func TestSendQueueFullClosesSession(t *testing.T) {
	ts := newTestServer(t, Options{MaxQueuedMessages: 10})
	sid := handshakePolling(t, ts)
	s := ts.eio.Session(sid)
	if s.SendVolatile(NewMessage([]byte("v"), false)) {
		t.Fatal("a volatile message was queued with no poll pending")
	}
	var err error
	for i := 0; i < 11 && err == nil; i++ {
		err = s.Send(NewMessage([]byte("x"), false))
	}
	if !errors.Is(err, ErrSendQueueFull) {
		t.Fatalf("err %v", err)
	}
	if ev := ts.waitClose(t); !errors.Is(ev.err, ErrSendQueueFull) {
		t.Fatalf("close %+v", ev)
	}
	if err := s.Send(NewMessage([]byte("x"), false)); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestCORS(t *testing.T) {
	var hits limitCounter
	ts := newTestServer(t, Options{CORSOrigins: []string{"https://app.example"}, CORSCredentials: true, OnLimit: hits.hook})
	req, _ := http.NewRequest("OPTIONS", ts.url("transport=polling"), nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// A page of another site can neither open a session nor post into one.
	sid := handshakePolling(t, ts) // no Origin: not a browser, allowed
	for _, tc := range []struct{ method, query, body string }{
		{"GET", "transport=polling", ""},
		{"GET", "transport=polling&sid=" + sid, ""},
		{"POST", "transport=polling&sid=" + sid, "4hello"},
	} {
		req, _ = http.NewRequest(tc.method, ts.url(tc.query), strings.NewReader(tc.body))
		req.Header.Set("Origin", "https://evil.example")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || string(body) != `{"code":4,"message":"origin \"https://evil.example\" is not allowed"}` ||
			resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s %s from a foreign origin: %d %s %v", tc.method, tc.query, resp.StatusCode, body, resp.Header)
		}
	}
	if ts.eio.Session(sid) == nil {
		t.Fatal("a refused request from a foreign origin closed the session it named")
	}
	if n := hits.get(LimitOrigin); n != 3 {
		t.Fatalf("OnLimit(%s) called %d times, want 3", LimitOrigin, n)
	}
	// The allowed origin is served, and so is the server's own (same-origin pages).
	req, _ = http.NewRequest("GET", ts.url("transport=polling"), nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest("GET", ts.url("transport=polling"), nil)
	req.Header.Set("Origin", "http://"+req.Host)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("same origin: %d %v", resp.StatusCode, resp.Header)
	}
	// WebSockets from a foreign origin are refused.
	u := "ws" + strings.TrimPrefix(ts.url("transport=websocket"), "http")
	_, wsResp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || wsResp == nil || wsResp.StatusCode != 403 {
		t.Fatalf("foreign websocket: %v %v", err, wsResp)
	}
}

// Without a CORS list only the server's own pages may connect: a page of another origin can
// neither open a WebSocket nor make polling requests, with its visitor's cookies, and is told
// so with 403 (cross-site WebSocket hijacking).
func TestOriginWithoutCORSList(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, c := range []struct {
		name    string
		trusted []netip.Prefix
		header  http.Header // added to the request; Host is the server's address
		ok      bool
	}{
		{"no Origin", nil, nil, true},
		{"its own origin", nil, http.Header{"Origin": {"http://{host}"}}, true},
		{"its own origin, upper case", nil, http.Header{"Origin": {"HTTP://{HOST}"}}, true},
		{"another origin", nil, http.Header{"Origin": {"https://evil.example"}}, false},
		{"another port", nil, http.Header{"Origin": {"http://127.0.0.1:1"}}, false},
		{"null", nil, http.Header{"Origin": {"null"}}, false},
		{"another scheme's default port", nil, http.Header{"Origin": {"https://{host}"}}, true},
		{"a proxy's host, not trusted", nil, http.Header{"Origin": {"https://app.example"}, "X-Forwarded-Host": {"app.example"}}, false},
		{"a trusted proxy's host", trusted, http.Header{"Origin": {"https://app.example"}, "X-Forwarded-Host": {"app.example"}}, true},
		{"a trusted proxy's other host", trusted, http.Header{"Origin": {"https://evil.example"}, "X-Forwarded-Host": {"app.example"}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, Options{TrustedProxies: c.trusted})
			host := strings.TrimPrefix(ts.URL, "http://")
			h := http.Header{}
			for k, vs := range c.header {
				for _, v := range vs {
					v = strings.ReplaceAll(v, "{host}", host)
					h.Add(k, strings.ReplaceAll(v, "{HOST}", strings.ToUpper(host)))
				}
			}
			want := http.StatusForbidden
			if c.ok {
				want = http.StatusOK
			}
			req, _ := http.NewRequest("GET", ts.url("transport=polling"), nil)
			req.Header = h.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("polling handshake: %d, want %d", resp.StatusCode, want)
			}
			u := "ws" + strings.TrimPrefix(ts.url("transport=websocket"), "http")
			conn, wsResp, err := websocket.DefaultDialer.Dial(u, h)
			if c.ok {
				if err != nil {
					t.Fatalf("WebSocket: %v", err)
				}
				conn.Close()
			} else if err == nil || wsResp == nil || wsResp.StatusCode != http.StatusForbidden {
				t.Fatalf("WebSocket: %v %v, want 403", err, wsResp)
			}
		})
	}
}

func TestServerCloseSendsClosePacket(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialWS(t, ts, "")
	readWS(t, c)
	sid := handshakePolling(t, ts)
	pending := pollAsync(ts, sid)
	waitPendingGET(t, ts, sid)
	ts.eio.Close()
	if _, msg := readWS(t, c); msg != "1" {
		t.Fatalf("websocket got %q, want close packet", msg)
	}
	if body := pollResult(t, pending); body != "1" {
		t.Fatalf("poll got %q, want close packet", body)
	}
	for range 2 {
		if ev := ts.waitClose(t); ev.reason != ReasonServerShutdown {
			t.Fatalf("reason %q", ev.reason)
		}
	}
	if status, _ := do(t, "GET", ts.url("transport=polling"), ""); status != 400 {
		t.Fatalf("handshake after close: %d", status)
	}
}

// waitPendingGET waits until the session's GET waits for something to answer: parked on its
// held connection when the server has an epoller (until then the GET may still be on its way
// there), in its handler otherwise.
func waitPendingGET(t *testing.T, ts *testServer, sid string) {
	t.Helper()
	waitFor(t, func() bool {
		s := ts.eio.Session(sid)
		if s == nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.getActive && (ts.eio.epoll == nil || s.parked.Load() != nil)
	})
}

// waitFor polls cond, for state that has no event to await, up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseDuringUpgradeFlushesOverWebSocket(t *testing.T) {
	ts := newTestServer(t, Options{})
	sid := handshakePolling(t, ts)
	c := dialWS(t, ts, "sid="+sid)
	_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if _, msg := readWS(t, c); msg != "3probe" {
		t.Fatalf("want 3probe, got %q", msg)
	}
	// The server ends the session while the client has paused polling and not yet sent "5".
	s := ts.eio.Session(sid)
	_ = s.Send(NewMessage([]byte("last words"), false))
	s.Close()
	if ev := ts.waitClose(t); ev.reason != ReasonForcedClose {
		t.Fatalf("reason %q", ev.reason)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
	if _, msg := readWS(t, c); msg != "4last words" {
		t.Fatalf("got %q", msg)
	}
	if _, msg := readWS(t, c); msg != "1" {
		t.Fatalf("got %q, want the close packet", msg)
	}
}

// Enqueue, like Send, starts an idle WebSocket session's writer: what it queues is written at
// once, not when the next ping happens to start one. A full queue leaves the session open.
func TestEnqueueWritesAtOnceAndLeavesAFullSessionOpen(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: time.Minute, PingTimeout: time.Minute, MaxQueuedMessages: 2})
	c := dialWS(t, ts, "")
	_, open := readWS(t, c)
	sess := ts.eio.Session(parseOpen(t, open).SID)
	if sess == nil {
		t.Fatal("no session for the open packet's sid")
	}
	for i := range 3 { // each time on an idle session: its writer has ended after the last
		if err := sess.Enqueue(NewMessage([]byte(fmt.Sprint("m", i)), false)); err != nil {
			t.Fatal(err)
		}
		if _, got := readWS(t, c); got != fmt.Sprint("4m", i) {
			t.Fatalf("got %q, want 4m%d", got, i)
		}
	}
	three := []*Message{NewMessage([]byte("4a"), false), NewMessage([]byte("4b"), false), NewMessage([]byte("4c"), false)}
	if err := sess.Enqueue(three...); !errors.Is(err, ErrSendQueueFull) {
		t.Fatalf("Enqueue past MaxQueuedMessages: %v, want ErrSendQueueFull", err)
	}
	select {
	case <-sess.Done():
		t.Fatal("Enqueue closed the session: closing is CloseSlow's, once the caller's lock is released")
	default:
	}
	sess.CloseSlow()
	if ev := ts.waitClose(t); ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrSendQueueFull) {
		t.Fatalf("CloseSlow: %q %v, want transport error, ErrSendQueueFull", ev.reason, ev.err)
	}
}

// FuzzQuery checks the query reader against url.ParseQuery for the keys Engine.IO reads.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"EIO=4&transport=polling&sid=abc", "EIO=4&EIO=3", "sid=%41&EIO=4", "a;b=c&sid=x", "sid", "=&&sid=&", "transport=web+socket"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, _ := url.ParseQuery(raw)
		q := queryOf(raw)
		for _, k := range []string{"EIO", "transport", "sid"} {
			if got := q.Get(k); got != want.Get(k) {
				t.Fatalf("query %q, key %s: %q, url.ParseQuery %q", raw, k, got, want.Get(k))
			}
		}
	})
}
