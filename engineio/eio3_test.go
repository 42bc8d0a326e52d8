package engineio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gorilla/websocket"
)

// v3URL is a request of a v3 client (socket.io-client 2.x).
func (ts *testServer) v3URL(query string) string {
	return ts.URL + "/socket.io/?EIO=3&" + query
}

// doHeader is do with request headers, returning the response's headers too.
func doHeader(t *testing.T, method, u, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// parseOpenV3 checks a v3 open packet, which has no maxPayload, and returns it.
func parseOpenV3(t testing.TB, packet string) openPacket {
	t.Helper()
	if !strings.HasPrefix(packet, "0{") {
		t.Fatalf("want an open packet, got %q", packet)
	}
	var keys map[string]any
	if err := json.Unmarshal([]byte(packet[1:]), &keys); err != nil {
		t.Fatal(err)
	}
	if _, ok := keys["maxPayload"]; ok || len(keys) != 4 {
		t.Fatalf("a v3 open packet has sid, upgrades, pingInterval and pingTimeout only, got %v", keys)
	}
	var op openPacket
	if err := json.Unmarshal([]byte(packet[1:]), &op); err != nil {
		t.Fatal(err)
	}
	return op
}

// splitPayloadV3 splits a v3 text payload the test's own way: by UTF-16 lengths, as a
// JavaScript client reads it.
func splitPayloadV3(t testing.TB, body string) []string {
	t.Helper()
	var out []string
	for body != "" {
		n, rest, ok := strings.Cut(body, ":")
		if !ok {
			t.Fatalf("payload %q: no length", body)
		}
		var units int
		if _, err := fmt.Sscanf(n, "%d", &units); err != nil {
			t.Fatalf("payload length %q: %v", n, err)
		}
		i := 0
		for _, r := range rest {
			if units <= 0 {
				break
			}
			units--
			if r > 0xFFFF {
				units--
			}
			i += len(string(r))
		}
		if units != 0 {
			t.Fatalf("payload %q: a length past its end or inside a character", body)
		}
		out = append(out, rest[:i])
		body = rest[i:]
	}
	return out
}

// handshakeV3 opens a v3 polling session with the extra query and returns its sid.
func handshakeV3(t *testing.T, ts *testServer, query string) string {
	t.Helper()
	status, body := do(t, "GET", ts.v3URL("transport=polling&"+query), "")
	if status != 200 {
		t.Fatalf("v3 handshake: %d %s", status, body)
	}
	packets := splitPayloadV3(t, body)
	return parseOpenV3(t, packets[0]).SID
}

func TestEIO3HandshakeOpenPacketHasNoMaxPayload(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	for _, u := range []string{ts.v3URL("transport=polling"), ts.URL + "/socket.io/?transport=polling", ts.URL + "/socket.io/?EIO=2&transport=polling"} {
		status, body := do(t, "GET", u, "")
		if status != 200 {
			t.Fatalf("%s: %d %s", u, status, body)
		}
		packets := splitPayloadV3(t, body)
		if len(packets) != 1 {
			t.Fatalf("%s: want the open packet alone, got %q", u, body)
		}
		op := parseOpenV3(t, packets[0])
		if op.PingInterval != 1000 || len(op.Upgrades) != 1 || op.Upgrades[0] != "websocket" {
			t.Fatalf("%s: open packet %+v", u, op)
		}
		if p := ts.eio.Session(op.SID).Protocol(); p != 3 {
			t.Fatalf("%s: Protocol() = %d, want 3", u, p)
		}
	}
	// v4 beside it is unchanged.
	sid := handshakePolling(t, ts)
	if p := ts.eio.Session(sid).Protocol(); p != 4 {
		t.Fatalf("v4 session: Protocol() = %d", p)
	}
}

func TestEIO3RefusedUnlessAllowed(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: time.Second, PingTimeout: pongWait})
	const want = `{"code":5,"message":"Unsupported protocol version"}`
	for _, u := range []string{
		ts.v3URL("transport=polling"),
		ts.URL + "/socket.io/?transport=polling",
		ts.v3URL("transport=polling&j=0"),
		ts.v3URL("transport=polling&b64=1"),
	} {
		if status, body := do(t, "GET", u, ""); status != 400 || body != want {
			t.Fatalf("%s: %d %s, want 400 %s", u, status, body, want)
		}
	}
	wsURL := "ws" + strings.TrimPrefix(ts.v3URL("transport=websocket"), "http")
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err == nil {
		conn.Close()
		t.Fatal("a v3 WebSocket was upgraded")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || string(body) != want {
		t.Fatalf("v3 WebSocket: %d %s, want 400 %s", resp.StatusCode, body, want)
	}
	// v4 still works.
	handshakePolling(t, ts)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url("transport=websocket"), "http"), nil)
	if err != nil {
		t.Fatalf("v4 WebSocket: %v", err)
	}
	c.Close()
}

func TestEIO3PollingHeartbeatIsReversed(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	sid := handshakeV3(t, ts, "")
	// The client pings, the server answers at once with the same data.
	pinged := time.Now()
	if status, body := do(t, "POST", ts.v3URL("transport=polling&sid="+sid), "1:26:2probe"); status != 200 || body != "ok" {
		t.Fatalf("ping: %d %s", status, body)
	}
	if _, body := do(t, "GET", ts.v3URL("transport=polling&sid="+sid), ""); body != "1:36:3probe" {
		t.Fatalf("pongs: %q", body)
	}
	// Without a ping, the session ends after pingInterval + pingTimeout, having sent no ping.
	poll := make(chan string, 1)
	go func() {
		_, body, _ := request("GET", ts.v3URL("transport=polling&sid="+sid), "")
		poll <- body
	}()
	ev := ts.waitClose(t)
	if ev.reason != ReasonPingTimeout {
		t.Fatalf("closed with %q, want ping timeout", ev.reason)
	}
	if d := time.Since(pinged); d < 400*time.Millisecond {
		t.Fatalf("closed %v after the last ping, before pingInterval + pingTimeout", d)
	}
	if body := <-poll; body != "1:1" {
		t.Fatalf("the pending GET got %q, want the close packet alone (no ping)", body)
	}
}

func TestEIO3PongFromClientIsAnError(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	sid := handshakeV3(t, ts, "")
	do(t, "POST", ts.v3URL("transport=polling&sid="+sid), "1:3")
	ev := ts.waitClose(t)
	if ev.reason != ReasonTransportError || !errors.Is(ev.err, ErrHeartbeatDirection) {
		t.Fatalf("closed with %q %v, want transport error, invalid heartbeat direction", ev.reason, ev.err)
	}
}

func TestEIO3TextPayloadLengthsInUTF16Units(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	sid := handshakeV3(t, ts, "")
	// "4😀" is 3 units (the emoji is a surrogate pair), "4你" 2, "4héllo" 6.
	const body = "3:4😀2:4你6:4héllo"
	if status, resp := do(t, "POST", ts.v3URL("transport=polling&sid="+sid), body); status != 200 {
		t.Fatalf("post: %d %s", status, resp)
	}
	if got := ts.received(); len(got) != 3 || got[0] != "😀" || got[1] != "你" || got[2] != "héllo" {
		t.Fatalf("received %q", got)
	}
	status, h, resp := doHeader(t, "GET", ts.v3URL("transport=polling&sid="+sid), "", nil)
	if status != 200 || resp != body || h.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("echo: %d %q %q, want %q", status, h.Get("Content-Type"), resp, body)
	}
	// A length counted in bytes (the emoji's 4) is refused, and closes the session.
	sid = handshakeV3(t, ts, "")
	if status, _ := do(t, "POST", ts.v3URL("transport=polling&sid="+sid), "5:4😀"); status != 400 {
		t.Fatalf("a length in bytes: %d, want 400", status)
	}
	if ev := ts.waitClose(t); ev.reason != ReasonParseError {
		t.Fatalf("closed with %q", ev.reason)
	}
}

func TestEIO3Base64Binary(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	sid := handshakeV3(t, ts, "b64=1")
	// Binary 1,2,3 is "b4AQID": 6 units. A text message beside it.
	const body = "6:b4AQID3:4hi"
	if status, resp := do(t, "POST", ts.v3URL("transport=polling&b64=1&sid="+sid), body); status != 200 {
		t.Fatalf("post: %d %s", status, resp)
	}
	if got := ts.received(); len(got) != 2 || got[0] != "\x01\x02\x03" || got[1] != "hi" {
		t.Fatalf("received %q", got)
	}
	status, h, resp := doHeader(t, "GET", ts.v3URL("transport=polling&b64=1&sid="+sid), "", nil)
	if status != 200 || resp != body || h.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("echo: %d %q %q, want %q", status, h.Get("Content-Type"), resp, body)
	}
}

func TestEIO3XHR2BinaryPayloads(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	sid := handshakeV3(t, ts, "")
	// A text packet "4你" (4 UTF-8 bytes), a binary one of type byte 4 and 1,2,3 (4 bytes),
	// and a text packet of 12 bytes, whose length is the digit bytes 1, 2.
	body := []byte{0, 4, 0xFF, '4', 0xE4, 0xBD, 0xA0, 1, 4, 0xFF, 4, 1, 2, 3, 0, 1, 2, 0xFF}
	body = append(body, "4hello world"...)
	status, _, resp := doHeader(t, "POST", ts.v3URL("transport=polling&sid="+sid), string(body),
		map[string]string{"Content-Type": "application/octet-stream"})
	if status != 200 || resp != "ok" {
		t.Fatalf("post: %d %s", status, resp)
	}
	if got := ts.received(); len(got) != 3 || got[0] != "你" || got[1] != "\x01\x02\x03" || got[2] != "hello world" {
		t.Fatalf("received %q", got)
	}
	// The echo holds binary, and the client did not ask for base64: an XHR2 binary payload.
	status, h, resp := doHeader(t, "GET", ts.v3URL("transport=polling&sid="+sid), "", nil)
	if status != 200 || resp != string(body) || h.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("echo: %d %q %v, want %v", status, h.Get("Content-Type"), []byte(resp), body)
	}
	// Text alone is a text payload still.
	do(t, "POST", ts.v3URL("transport=polling&sid="+sid), "3:4hi")
	if _, h, resp := doHeader(t, "GET", ts.v3URL("transport=polling&sid="+sid), "", nil); resp != "3:4hi" || h.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("text echo: %q %q", h.Get("Content-Type"), resp)
	}
	// A binary packet without its type byte is refused.
	status, _, _ = doHeader(t, "POST", ts.v3URL("transport=polling&sid="+sid), "\x01\x03\xff\x01\x02\x03",
		map[string]string{"Content-Type": "application/octet-stream"})
	if status != 400 {
		t.Fatalf("binary without its type byte: %d, want 400", status)
	}
}

// dialV3 opens a v3 WebSocket with the extra query and returns it after its open packet.
func dialV3(t *testing.T, ts *testServer, query string) (*websocket.Conn, string) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.v3URL("transport=websocket"+query), "http")
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(closeWait))
	if query != "" {
		return c, "" // an upgrade: no open packet
	}
	_, open, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return c, parseOpenV3(t, string(open)).SID
}

func TestEIO3WebSocketBinaryTypeByte(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableWebSocketPoller=%v", disable), func(t *testing.T) {
			ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait, DisableWebSocketPoller: disable})
			c, sid := dialV3(t, ts, "")
			if p := ts.eio.Session(sid).Protocol(); p != 3 {
				t.Fatalf("Protocol() = %d", p)
			}
			if err := c.WriteMessage(websocket.BinaryMessage, []byte{4, 1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			if typ, data := readWS(t, c); typ != websocket.BinaryMessage || data != "\x04\x01\x02\x03" {
				t.Fatalf("binary echo: %d %v", typ, []byte(data))
			}
			if got := ts.received(); len(got) != 1 || got[0] != "\x01\x02\x03" {
				t.Fatalf("received %q", got)
			}
			// Text frames are as in v4; the client pings and is answered.
			_ = c.WriteMessage(websocket.TextMessage, []byte("4hi"))
			if typ, data := readWS(t, c); typ != websocket.TextMessage || data != "4hi" {
				t.Fatalf("text echo: %d %q", typ, data)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("2"))
			if _, data := readWS(t, c); data != "3" {
				t.Fatalf("pong: %q", data)
			}
			// A binary frame without the type byte is a parse error.
			_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
			if ev := ts.waitClose(t); ev.reason != ReasonParseError {
				t.Fatalf("closed with %q", ev.reason)
			}
		})
	}
}

func TestEIO3WebSocketHeartbeat(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableWebSocketPoller=%v", disable), func(t *testing.T) {
			const interval, timeout = 100 * time.Millisecond, 100 * time.Millisecond
			ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: interval, PingTimeout: timeout, DisableWebSocketPoller: disable})
			c, _ := dialV3(t, ts, "")
			// Five ping intervals of client pings: each answered, and no ping from the server.
			var lastPing time.Time
			for i := range 5 {
				if i > 0 {
					time.Sleep(interval) // the client's own ping interval
				}
				lastPing = time.Now()
				_ = c.WriteMessage(websocket.TextMessage, []byte("2"))
				if _, data := readWS(t, c); data != "3" {
					t.Fatalf("ping %d: got %q, want the pong", i, data)
				}
			}
			// Then silence: closed for ping timeout, pingInterval + pingTimeout after the last
			// ping, with no ping sent meanwhile.
			ev := ts.waitClose(t)
			if d := time.Since(lastPing); ev.reason != ReasonPingTimeout || d < interval+timeout {
				t.Fatalf("closed with %q %v after the last ping", ev.reason, d)
			}
			if typ, data, err := c.ReadMessage(); err == nil {
				t.Fatalf("got %d %q after the last pong, want the connection closed", typ, data)
			}
		})
	}
}

func TestEIO3UpgradeFromPolling(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableWebSocketPoller=%v", disable), func(t *testing.T) {
			ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait, DisableWebSocketPoller: disable})
			sid := handshakeV3(t, ts, "")
			poll := make(chan string, 1)
			go func() {
				_, body, _ := request("GET", ts.v3URL("transport=polling&sid="+sid), "")
				poll <- body
			}()
			c, _ := dialV3(t, ts, "&sid="+sid)
			_ = c.WriteMessage(websocket.TextMessage, []byte("2probe"))
			if _, data := readWS(t, c); data != "3probe" {
				t.Fatalf("probe answer %q", data)
			}
			select {
			case body := <-poll:
				if body != "1:6" {
					t.Fatalf("the pending GET got %q, want a noop", body)
				}
			case <-time.After(closeWait):
				t.Fatal("the pending GET was not released")
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("5"))
			_ = c.WriteMessage(websocket.BinaryMessage, []byte{4, 9})
			if typ, data := readWS(t, c); typ != websocket.BinaryMessage || data != "\x04\x09" {
				t.Fatalf("binary echo: %d %v", typ, []byte(data))
			}
			if tr := ts.eio.Session(sid).Transport(); tr != TransportWebSocket {
				t.Fatalf("transport %q", tr)
			}
		})
	}
}

// jsonpBody checks a JSONP answer's wrapper and returns the payload it carries.
func jsonpBody(t *testing.T, j, body string) string {
	t.Helper()
	prefix := "___eio[" + j + "]("
	if !strings.HasPrefix(body, prefix) || !strings.HasSuffix(body, ");") {
		t.Fatalf("JSONP answer %q", body)
	}
	lit := body[len(prefix) : len(body)-2]
	if strings.ContainsAny(lit, "\u2028\u2029\n") {
		t.Fatalf("JSONP string %q holds a line terminator", lit)
	}
	var payload string
	if err := json.Unmarshal([]byte(lit), &payload); err != nil {
		t.Fatalf("JSONP string %q: %v", lit, err)
	}
	return payload
}

// jsonpForm is what engine.io-client 3.x posts: the payload with newlines escaped, in the
// form's d field.
func jsonpForm(payload string) string {
	escaped := strings.ReplaceAll(payload, `\n`, "\\\n")
	escaped = strings.ReplaceAll(escaped, "\n", `\n`)
	return url.Values{"d": {escaped}}.Encode()
}

func TestJSONPPolling(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	status, h, body := doHeader(t, "GET", ts.v3URL("transport=polling&j=7"), "", nil)
	if status != 200 || h.Get("Content-Type") != "text/plain; charset=UTF-8" || h.Get("X-Content-Type-Options") != "" {
		t.Fatalf("JSONP handshake: %d %v", status, h)
	}
	sid := parseOpenV3(t, splitPayloadV3(t, jsonpBody(t, "7", body))[0]).SID

	// A message with a quote, a backslash-n (as JSON escapes a newline), a raw newline, a
	// line separator and binary, as the client posts them.
	msg := "4[\"a\\nb\",\"c\nd\",\"e\u2028f\"]"
	payload := fmt.Sprintf("%d:%s6:b4AQID", utf16Len([]byte(msg)), msg)
	status, _, resp := doHeader(t, "POST", ts.v3URL("transport=polling&j=7&sid="+sid), jsonpForm(payload),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if status != 200 || resp != "ok" {
		t.Fatalf("JSONP post: %d %s", status, resp)
	}
	if got := ts.received(); len(got) != 2 || got[0] != msg[1:] || got[1] != "\x01\x02\x03" {
		t.Fatalf("received %q", got)
	}
	// The echo comes back in the script, binary in base64 although b64 was not asked.
	status, h, body = doHeader(t, "GET", ts.v3URL("transport=polling&j=7&sid="+sid), "", nil)
	if status != 200 || h.Get("Content-Type") != "text/plain; charset=UTF-8" || h.Get("X-Content-Type-Options") != "" {
		t.Fatalf("JSONP poll: %d %v", status, h)
	}
	if !strings.Contains(body, `\u2028`) {
		t.Fatalf("U+2028 not escaped in %q", body)
	}
	if got := jsonpBody(t, "7", body); got != payload {
		t.Fatalf("JSONP echo %q, want %q", got, payload)
	}
}

func TestJSONPIndexMustBeDigits(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait})
	for _, j := range []string{"", "a", "0)", "1%3Balert(1)", "12345678901", "-1", "1e3", "%E2%80%A8"} {
		status, body := do(t, "GET", ts.v3URL("transport=polling&j="+j), "")
		if status != 400 || strings.Contains(body, "___eio") {
			t.Fatalf("j=%s: %d %s, want 400", j, status, body)
		}
	}
	if status, body := do(t, "GET", ts.v3URL("transport=polling&j=1234567890"), ""); status != 200 || !strings.HasPrefix(body, "___eio[1234567890](") {
		t.Fatalf("j of 10 digits: %d %s", status, body)
	}
}

func TestJSONPOriginCheckApplies(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait, CORSOrigins: []string{"http://ok.example"}})
	status, _, body := doHeader(t, "GET", ts.v3URL("transport=polling&j=0"), "", map[string]string{"Origin": "http://ok.example"})
	if status != 200 {
		t.Fatalf("allowed origin: %d %s", status, body)
	}
	sid := parseOpenV3(t, splitPayloadV3(t, jsonpBody(t, "0", body))[0]).SID
	status, _, _ = doHeader(t, "POST", ts.v3URL("transport=polling&j=0&sid="+sid), jsonpForm("3:4hi"),
		map[string]string{"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
	if status != 403 {
		t.Fatalf("JSONP post from an unlisted origin: %d, want 403", status)
	}
	if got := ts.received(); len(got) != 0 {
		t.Fatalf("delivered %q from an unlisted origin", got)
	}
}

func TestJSONPFormUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a\nb`, "a\nb"},
		{`a\\nb`, `a\nb`},
		{`\\\n`, `\\n`},
		{`\n\n`, "\n\n"},
		{`\\\\n`, `\\\n`},
		{`no escapes`, `no escapes`},
		{`\`, `\`},
		{`\\`, `\\`},
	} {
		if got := string(jsonpUnescape([]byte(tc.in))); got != tc.want {
			t.Errorf("jsonpUnescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x=1", "d=1&d=2", "d=%zz"} {
		if _, err := decodeJSONPForm([]byte(bad)); err == nil {
			t.Errorf("decodeJSONPForm(%q): no error", bad)
		}
	}
}

func TestEIO3DecodePayloadErrors(t *testing.T) {
	for _, bad := range []string{"", "1", "1:", ":4", "2:4", "x:4a", "3:4😀x", "2:4😀", "12345678901:4", "1:9", "3:b5AQ", "4:b4!!"} {
		if ps, err := decodePayloadV3([]byte(bad)); err == nil {
			t.Errorf("decodePayloadV3(%q) = %v, want an error", bad, ps)
		}
	}
	for _, bad := range [][]byte{{}, {2, 1, 0xFF, '4'}, {0, 0xFF, '4'}, {0, 1, 0xFF}, {0, 2}, {1, 1, 0xFF, 5}, {0, 10, 0xFF, '4'}, {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0xFF}} {
		if ps, err := decodeBinaryPayloadV3(bad); err == nil {
			t.Errorf("decodeBinaryPayloadV3(%v) = %v, want an error", bad, ps)
		}
	}
	ps, err := decodePayloadV3([]byte("0:1:2"))
	if err != nil || len(ps) != 1 || ps[0].typ != packetPing {
		t.Fatalf("an empty packet is skipped: %v %v", ps, err)
	}
}

// messagesOf builds the messages of a fuzzed batch: each part a text message, or a binary
// one when it starts with 0xFF.
func messagesOf(parts [][]byte) []*Message {
	var batch []*Message
	for _, p := range parts {
		if len(p) > 0 && p[0] == 0xFF {
			batch = append(batch, NewMessage(bytes.Clone(p[1:]), true))
		} else {
			batch = append(batch, NewMessage(p, false))
		}
	}
	return batch
}

// checkRoundTrip checks that packets are the batch's messages.
func checkRoundTrip(t *testing.T, batch []*Message, packets []packet, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("decode of an encoded batch: %v", err)
	}
	if len(packets) != len(batch) {
		t.Fatalf("%d packets, want %d", len(packets), len(batch))
	}
	for i, p := range packets {
		m := batch[i]
		data := m.frame
		if !m.binary {
			data = m.frame[1:]
		}
		if p.typ != packetMessage || p.binary != m.binary || !bytes.Equal(p.data, data) {
			t.Fatalf("packet %d: %v %v %q, want binary %v %q", i, p.typ, p.binary, p.data, m.binary, data)
		}
	}
}

// splitFuzz cuts fuzzed bytes into parts at 0x00 bytes, at most 16 of them.
func splitFuzz(b []byte) [][]byte {
	parts := bytes.SplitN(b, []byte{0}, 16)
	return parts
}

func FuzzDecodePayloadV3(f *testing.F) {
	for _, s := range []string{"3:4😀2:4你", "6:b4AQID3:4hi", "1:2", "0:", "5:4😀", "2:4\xff", "3:4\xed\xa0\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any body: no panic, and what decodes is packets.
		if ps, err := decodePayloadV3(b); err == nil {
			for _, p := range ps {
				if p.typ > packetNoop {
					t.Fatalf("packet type %d", p.typ)
				}
			}
		}
		// The same bytes as a batch: encoded, then decoded, give the batch back.
		batch := messagesOf(splitFuzz(b))
		body := appendPayloadV3(nil, batch)
		if len(body) > 0 {
			ps, err := decodePayloadV3(body)
			checkRoundTrip(t, batch, ps, err)
		}
	})
}

func FuzzDecodeBinaryPayloadV3(f *testing.F) {
	f.Add([]byte{0, 4, 0xFF, '4', 0xE4, 0xBD, 0xA0, 1, 4, 0xFF, 4, 1, 2, 3})
	f.Add([]byte{0, 1, 2, 0xFF, '4', 'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'})
	f.Add([]byte{1, 1, 0xFF, 4})
	f.Add([]byte{0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ps, err := decodeBinaryPayloadV3(b); err == nil {
			for _, p := range ps {
				if p.typ > packetNoop || p.binary && p.typ != packetMessage {
					t.Fatalf("packet %v", p)
				}
			}
		}
		batch := messagesOf(splitFuzz(b))
		body := appendBinaryPayloadV3(nil, batch)
		if len(body) > 0 {
			ps, err := decodeBinaryPayloadV3(body)
			checkRoundTrip(t, batch, ps, err)
		}
	})
}

func FuzzJSONPForm(f *testing.F) {
	for _, s := range []string{"d=3%3A4hi", "d=1%3A2", "d=a%5Cnb", "d=%5C%5Cn", "d=1&d=2", "d=%zz", "x=1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any form: no panic; what decodes is no longer than the form.
		if d, err := decodeJSONPForm(b); err == nil && len(d) > len(b) {
			t.Fatalf("decoded %d bytes out of %d", len(d), len(b))
		}
		// Packets as the client posts them come back, but for a backslash before a newline,
		// which the client's escaping does not keep apart from an escaped newline (as in Node).
		batch := messagesOf(splitFuzz(b))
		payload := appendPayloadV3(nil, batch)
		if len(payload) == 0 || bytes.Contains(payload, []byte("\\\n")) {
			return
		}
		d, err := decodeJSONPForm([]byte(jsonpForm(string(payload))))
		if err != nil {
			t.Fatalf("form of %q: %v", payload, err)
		}
		if !bytes.Equal(d, payload) {
			t.Fatalf("form of %q decoded as %q", payload, d)
		}
		ps, err := decodePayloadV3(d)
		checkRoundTrip(t, batch, ps, err)
	})
}

// utf16Units is the length of s in UTF-16 code units by Go's own packages: invalid UTF-8
// becomes U+FFFD byte by byte, as a string's conversion to runes does.
func utf16Units(s []byte) int { return len(utf16.Encode([]rune(string(s)))) }

var utf16Cases = []string{
	"", "4", "4hello", "😀", "你", "4😀你é", "\u2028\u2029", "\U0010FFFF", "\uFFFF", "\U00010000",
	"\xff", "\xe4\xbd", "\xed\xa0\x80", "\xf0\x9f\x98", "a\x80b", "\xc0\xaf", "\xf4\x90\x80\x80",
}

func TestUTF16LenMatchesUTF16Package(t *testing.T) {
	for _, s := range utf16Cases {
		if got, want := utf16Len([]byte(s)), utf16Units([]byte(s)); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
	if n := utf16Len([]byte("😀")); n != 2 {
		t.Errorf("an emoji counts %d, want 2", n)
	}
	if n := utf16Len([]byte("你")); n != 1 {
		t.Errorf("a CJK character counts %d, want 1", n)
	}
}

func FuzzUTF16Len(f *testing.F) {
	for _, s := range utf16Cases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := utf16Len(b)
		if want := utf16Units(b); n != want {
			t.Fatalf("utf16Len(%q) = %d, want %d", b, n, want)
		}
		// utf16Prefix takes back the whole of b, and no unit more.
		if size, ok := utf16Prefix(b, n); !ok || size != len(b) {
			t.Fatalf("utf16Prefix(%q, %d) = %d %v", b, n, size, ok)
		}
		if _, ok := utf16Prefix(b, n+1); ok {
			t.Fatalf("utf16Prefix(%q, %d) past the end", b, n+1)
		}
	})
}

// TestJSONPPageOrigin: a JSONP script is loaded without Origin, with its visitor's cookies, and
// its page reads the answer; CORSOrigins decides on the page the browser names instead, so a
// foreign page can neither open a session nor read one's polls.
func TestJSONPPageOrigin(t *testing.T) {
	ts := newTestServer(t, Options{AllowEIO3: true, PingInterval: time.Second, PingTimeout: pongWait, CORSOrigins: []string{"http://ok.example"}})
	own := ts.URL + "/page.html"
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"a listed page", map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "http://ok.example/chat"}, 200},
		{"the server's own page", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"the server's own page, by its Referer", map[string]string{"Sec-Fetch-Site": "same-site", "Referer": own}, 200},
		{"typed in the address bar", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"no browser", nil, 200},
		{"an old browser on a listed page", map[string]string{"Referer": "http://ok.example/"}, 200},
		{"a foreign page", map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "http://evil.example/x"}, 403},
		{"a foreign page of an old browser", map[string]string{"Referer": "http://evil.example/x"}, 403},
		{"a page that hides its Referer", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"a Referer that is no URL", map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "::"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := doHeader(t, "GET", ts.v3URL("transport=polling&j=0"), "", tc.header)
			if status != tc.want {
				t.Fatalf("JSONP handshake: %d %s, want %d", status, body, tc.want)
			}
			if tc.want == 403 && strings.Contains(body, "sid") {
				t.Fatalf("refused, and still answered %s", body)
			}
		})
	}

	// A session opened from a listed page: its polls are not read from a foreign one.
	_, _, body := doHeader(t, "GET", ts.v3URL("transport=polling&j=0"), "", nil)
	sid := parseOpenV3(t, splitPayloadV3(t, jsonpBody(t, "0", body))[0]).SID
	status, _, body := doHeader(t, "GET", ts.v3URL("transport=polling&j=0&sid="+sid), "",
		map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "http://evil.example/"})
	if status != 403 {
		t.Fatalf("a foreign page's poll: %d %s, want 403", status, body)
	}
}

// TestJSONPNeedsAllowEIO3: without AllowEIO3, a JSONP request of v4 is refused too: only 2.x
// clients poll over JSONP, and its scripts would be a way around the Origin check.
func TestJSONPNeedsAllowEIO3(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: time.Second, PingTimeout: pongWait})
	status, _, body := doHeader(t, "GET", ts.url("transport=polling&j=0"), "", nil)
	if status != 400 || strings.Contains(body, "sid") {
		t.Fatalf("a v4 JSONP handshake without AllowEIO3: %d %s, want 400", status, body)
	}
	if status, _, body := doHeader(t, "GET", ts.url("transport=polling"), "", nil); status != 200 || !strings.Contains(body, "sid") {
		t.Fatalf("a v4 handshake: %d %s", status, body)
	}
}
