package main

// Hostile tests of the public port, on raw sockets against the real binary: requests whose
// boundaries a front proxy and siobridge could read differently must be refused whole, and
// nothing of them may reach the app.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// upstreamLog records every request the app behind siobridge receives (but webhooks).
type upstreamLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path body"
	read int      // how many of reqs sentinel has returned
	seen changes
}

func (u *upstreamLog) handler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Method+" "+r.URL.RequestURI()+" "+string(body))
	u.mu.Unlock()
	u.seen.notify()
	_, _ = io.WriteString(w, "app:"+r.URL.Path)
}

// startEdge runs siobridge in front of an app whose every route is recorded.
func startEdge(t *testing.T, env ...string) (*bridge, *upstreamLog) {
	t.Helper()
	a := startApp(t)
	u := &upstreamLog{}
	a.mux.HandleFunc("/", u.handler)
	env = append([]string{"SIOBRIDGE_SERVER_UPSTREAM=http://" + a.addr}, env...)
	return startBridge(t, a, env...), u
}

// sentinel asks the app for /sentinel through siobridge on a new connection and waits for
// it: whatever siobridge forwarded before it has arrived by then. It returns the requests the
// app received since the last sentinel.
func (u *upstreamLog) sentinel(t *testing.T, b *bridge) []string {
	t.Helper()
	res, err := b.client.Get(b.url() + "/sentinel")
	if err != nil {
		t.Fatalf("GET /sentinel: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /sentinel: %s", res.Status)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	reqs := u.reqs[u.read:]
	u.read = len(u.reqs)
	if len(reqs) == 0 || !strings.HasPrefix(reqs[len(reqs)-1], "GET /sentinel ") {
		t.Fatalf("the app's last request is not the sentinel: %q", reqs)
	}
	return reqs[:len(reqs)-1]
}

// rawConn is a client connection on which the test writes bytes as they are.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	// refusedAlready: the attack's own steps saw the refusal and the close.
	refusedAlready bool
	method         string // of the request answered next, when not GET (a HEAD's answer has no body)
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(e2eWait))
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("writing %q: %v", s, err)
	}
}

// response reads one response; its body is read whole.
func (rc *rawConn) response() (*http.Response, string) {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(e2eWait))
	var req *http.Request
	if rc.method != "" {
		req = &http.Request{Method: rc.method}
	}
	res, err := http.ReadResponse(rc.br, req)
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		rc.t.Fatalf("reading a response's body: %v", err)
	}
	return res, string(body)
}

// closed checks that the server closes the connection with nothing more to read.
func (rc *rawConn) closed() {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(e2eWait))
	b, err := io.ReadAll(rc.br)
	if err != nil {
		rc.t.Fatalf("the connection was not closed: %v (read %q)", err, b)
	}
	if len(b) > 0 {
		rc.t.Fatalf("after the refusal the connection carried %q", b)
	}
}

// refused checks the next response is status and the connection then closes.
func (rc *rawConn) refused(status int) string {
	rc.t.Helper()
	res, body := rc.response()
	if res.StatusCode != status {
		rc.t.Fatalf("got %s %q, want %d", res.Status, body, status)
	}
	rc.closed()
	return body
}

var sidRE = regexp.MustCompile(`"sid":"([^"]+)"`)

// openPolling opens an Engine.IO session over polling on rc and returns its id; the session
// then has nothing queued, so its next GET waits.
func (rc *rawConn) openPolling(host string) string {
	rc.t.Helper()
	rc.send("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
	res, body := rc.response()
	m := sidRE.FindStringSubmatch(body)
	if res.StatusCode != http.StatusOK || m == nil {
		rc.t.Fatalf("handshake: %s %q", res.Status, body)
	}
	return m[1]
}

// smuggled is a request hidden in another's body: 61 bytes, as a front proxy would forward it.
const smuggled = "GET /admin/secret HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789abc\r\n\r\n"

func pollGET(host, sid string) string {
	return "GET /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + host + "\r\n"
}

func pollPOST(host, sid, body string) string {
	return fmt.Sprintf("POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", sid, host, len(body), body)
}

func chunked(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// TestE2ESmuggling sends requests whose body a front proxy forwards as a body and a lax
// server would read as a request of its own: each is refused with 400, the connection is
// closed, and the app never sees the hidden request.
func TestE2ESmuggling(t *testing.T) {
	if len(smuggled) != 61 {
		t.Fatalf("the smuggled request is %d bytes", len(smuggled))
	}
	b, u := startEdge(t)
	host := b.Public

	// Each case writes its attack on rc (a new connection) and expects status, then close.
	cases := []struct {
		name   string
		attack func(rc *rawConn)
		status int
	}{
		{"poll GET with a body", func(rc *rawConn) {
			sid := dialRaw(t, host).openPolling(host)
			rc.send(pollGET(host, sid) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled)
		}, http.StatusBadRequest},
		{"poll GET with a body on a held connection", func(rc *rawConn) {
			// The first GET parks and holds rc; a POST on another connection answers it; the
			// GET with a body comes next, on the held connection.
			sid := dialRaw(t, host).openPolling(host)
			rc.send(pollGET(host, sid) + "\r\n")
			post := dialRaw(t, host)
			post.send(pollPOST(host, sid, "40"))
			if res, body := post.response(); res.StatusCode != http.StatusOK || body != "ok" {
				t.Fatalf("POST 40: %s %q", res.Status, body)
			}
			if res, body := rc.response(); res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "40") {
				t.Fatalf("parked GET: %s %q", res.Status, body)
			}
			rc.send(pollGET(host, sid) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled)
		}, http.StatusBadRequest},
		{"poll GET with a body behind a parked GET", func(rc *rawConn) {
			// The second GET comes while the first is parked on a held connection, or with
			// it, before net/http has served it: then the first is refused too, as it shares
			// the connection of a request that cannot be read safely.
			sid := dialRaw(t, host).openPolling(host)
			rc.send(pollGET(host, sid) + "\r\n")
			rc.send(pollGET(host, sid) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled)
			post := dialRaw(t, host)
			post.send(pollPOST(host, sid, "40"))
			post.response()
			res, body := rc.response()
			switch {
			case res.StatusCode == http.StatusBadRequest:
				rc.closed()
				rc.refusedAlready = true
			case res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "40"):
				t.Fatalf("parked GET: %s %q", res.Status, body)
			}
		}, http.StatusBadRequest},
		{"poll GET with a chunked body", func(rc *rawConn) {
			sid := dialRaw(t, host).openPolling(host)
			rc.send(pollGET(host, sid) + "Transfer-Encoding: chunked\r\n\r\n" + chunked(smuggled))
		}, http.StatusBadRequest},
		{"handshake GET with a body", func(rc *rawConn) {
			rc.send("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + host +
				fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled)
		}, http.StatusBadRequest},
		{"app GET with a body", func(rc *rawConn) {
			rc.send("GET /page HTTP/1.1\r\nHost: " + host + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled)
		}, http.StatusBadRequest},
		{"app HEAD with a chunked body", func(rc *rawConn) {
			rc.method = http.MethodHead
			rc.send("HEAD /page HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled))
		}, http.StatusBadRequest},
		{"app POST with Content-Length and Transfer-Encoding", func(rc *rawConn) {
			// A front proxy that reads the Content-Length forwards 5 bytes of body and takes
			// the rest for the next request; one that reads the chunks takes it all as body.
			rc.send("POST /form HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\n" + smuggled)
		}, http.StatusBadRequest},
		{"poll POST with Content-Length and Transfer-Encoding", func(rc *rawConn) {
			sid := dialRaw(t, host).openPolling(host)
			rc.send("POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + host +
				"\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n40\r\n0\r\n\r\n" + smuggled)
		}, http.StatusBadRequest},
		{"app POST with two Transfer-Encodings", func(rc *rawConn) {
			// net/http answers it itself, before any handler.
			rc.send("POST /form HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" +
				"0\r\n\r\n" + smuggled)
		}, http.StatusNotImplemented},
		{"app POST with Transfer-Encoding in HTTP/1.0", func(rc *rawConn) {
			// net/http ignores Transfer-Encoding below HTTP/1.1, and would read the chunks as
			// the next request.
			rc.send("POST /form HTTP/1.0\r\nHost: " + host + "\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
				chunked(smuggled))
		}, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, host)
			rc.t = t
			c.attack(rc)
			if !rc.refusedAlready {
				rc.refused(c.status)
			}
			if reqs := u.sentinel(t, b); len(reqs) > 0 {
				t.Fatalf("the app received %q", reqs)
			}
		})
	}
}

// TestE2EHeaderLimit: a header above server.max_header_bytes is answered 431 and closed,
// on a new connection and on a held one; just below it a poll is served.
func TestE2EHeaderLimit(t *testing.T) {
	b, u := startEdge(t, "SIOBRIDGE_SERVER_MAX_HEADER_BYTES=4096")
	host := b.Public
	big := func(n int) string { return "X-Big: " + strings.Repeat("b", n) + "\r\n" }

	rc := dialRaw(t, host)
	rc.send("GET /page HTTP/1.1\r\nHost: " + host + "\r\n" + big(5000) + "\r\n")
	rc.refused(http.StatusRequestHeaderFieldsTooLarge)

	// A poll's header just below the limit is served, then the same connection, now held,
	// carries one above it.
	rc = dialRaw(t, host)
	sid := dialRaw(t, host).openPolling(host)
	rc.send("POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + host +
		"\r\nContent-Length: 2\r\n" + big(3800) + "\r\n40")
	if res, body := rc.response(); res.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("POST below the limit: %s %q", res.Status, body)
	}
	rc.send(pollGET(host, sid) + "\r\n")
	if res, body := rc.response(); res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "40") {
		t.Fatalf("GET: %s %q", res.Status, body)
	}
	// A POST served on the held connection: once it is answered, no GET is parked there (a
	// client may send no more than a header's worth behind a parked GET, and the answer of
	// one reaches the client just before the connection stops counting it as parked).
	rc.send(pollPOST(host, sid, "6"))
	if res, body := rc.response(); res.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("POST: %s %q", res.Status, body)
	}
	// Above the limit, within what net/http reads before it gives up: all of it is read, so
	// that the client gets the answer before the close.
	rc.send(pollGET(host, sid) + big(6000) + "\r\n")
	rc.refused(http.StatusRequestHeaderFieldsTooLarge)
	if reqs := u.sentinel(t, b); len(reqs) > 0 {
		t.Fatalf("the app received %q", reqs)
	}
	if n := b.metric(t, `siobridge_limit_hits_total{limit="max_header_bytes"}`); n < 2 {
		t.Fatalf("max_header_bytes counted %v times", n)
	}
}

// TestE2EBodyTimeout: a request body that stops coming is cut after server.body_timeout, for
// a proxied request (the app's request ends too, so none of its workers stays pinned) and
// for a polling POST, on a new connection and on a held one.
func TestE2EBodyTimeout(t *testing.T) {
	a := startApp(t)
	appErr := make(chan error, 1)
	a.mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		appErr <- err
	})
	b := startBridge(t, a, "SIOBRIDGE_SERVER_UPSTREAM=http://"+a.addr, "SIOBRIDGE_SERVER_BODY_TIMEOUT=300ms")
	host := b.Public

	rc := dialRaw(t, host)
	rc.send("POST /upload HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 100\r\n\r\nx")
	res, _ := rc.response()
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Fatalf("a stalled upload: %s (close %v), want 408 and the connection closed", res.Status, res.Close)
	}
	rc.closed()
	select {
	case err := <-appErr:
		if err == nil {
			t.Fatal("the app read the whole body of a request that stalled")
		}
	case <-time.After(e2eWait):
		t.Fatal("the app's request never ended")
	}

	// A polling POST on a new connection (net/http), then on a held one (the poller).
	for _, held := range []bool{false, true} {
		sid := dialRaw(t, host).openPolling(host)
		rc := dialRaw(t, host)
		if held {
			rc.send(pollPOST(host, sid, "40"))
			rc.response()
			rc.send(pollGET(host, sid) + "\r\n")
			if res, body := rc.response(); res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "40") {
				t.Fatalf("GET: %s %q", res.Status, body)
			}
		}
		rc.send("POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 100\r\n\r\n4")
		_ = rc.c.SetReadDeadline(time.Now().Add(e2eWait))
		if b, err := io.ReadAll(rc.br); err != nil {
			t.Fatalf("held %v: the stalled POST's connection stays open: %v (read %q)", held, err, b)
		}
	}
	if n := b.metric(t, `siobridge_limit_hits_total{limit="body_timeout"}`); n < 2 {
		t.Fatalf("body_timeout counted %v times", n)
	}
}

// TestE2ETCPConnectionLimit: connections beyond limits.max_tcp_connections_per_ip are
// answered 503 and closed as they are accepted; one closed frees its place.
func TestE2ETCPConnectionLimit(t *testing.T) {
	b, _ := startEdge(t, "SIOBRIDGE_LIMITS_MAX_TCP_CONNECTIONS_PER_IP=3")
	host := b.Public
	var open []*rawConn
	for range 3 {
		rc := dialRaw(t, host)
		rc.send("GET /sentinel HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
		if res, _ := rc.response(); res.StatusCode != http.StatusOK {
			t.Fatalf("got %s", res.Status)
		}
		open = append(open, rc)
	}
	rc := dialRaw(t, host)
	if body := rc.refused(http.StatusServiceUnavailable); !strings.Contains(body, "max_tcp_connections_per_ip") {
		t.Fatalf("refused with %q", body)
	}
	open[0].c.Close()
	deadline := time.Now().Add(e2eWait)
	for {
		rc := dialRaw(t, host)
		rc.send("GET /sentinel HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
		res, _ := rc.response()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a close: %s", res.Status)
		}
		time.Sleep(10 * time.Millisecond) // the server sees the close on its next read
	}
	if n := b.metric(t, `siobridge_limit_hits_total{limit="max_tcp_connections_per_ip"}`); n < 1 {
		t.Fatalf("max_tcp_connections_per_ip counted %v times", n)
	}
}

// TestE2ECrossSiteWebSocket: with the default cors_origins, a page of another origin can
// neither open a WebSocket nor poll; siobridge's own pages can.
func TestE2ECrossSiteWebSocket(t *testing.T) {
	b := startBridge(t, nil)
	u := "ws://" + b.Public + "/socket.io/?EIO=4&transport=websocket"
	_, res, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign page's WebSocket: %v %v, want 403", err, res)
	}
	rc := dialRaw(t, b.Public)
	rc.send("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: " + b.Public + "\r\nOrigin: https://evil.example\r\n\r\n")
	if res, body := rc.response(); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign page's poll: %s %q", res.Status, body)
	}
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"http://" + b.Public}})
	if err != nil {
		t.Fatalf("siobridge's own page: %v", err)
	}
	c.Close()
}
