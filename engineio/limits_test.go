package engineio

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tt := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer's header ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left part ignored", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, "198.51.100.1"},
		{"all trusted: left-most", "10.1.2.3:5000", []string{"10.7.7.7"}, "10.7.7.7"},
		{"garbage hop stops the walk", "10.1.2.3:5000", []string{"nonsense, 10.9.9.9"}, "10.9.9.9"},
		{"trusted without header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"ipv6 proxy", "[::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"mapped v4", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
		{"not an address", "pipe", nil, "invalid IP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientAddr(r, trusted).String(); got != tt.want {
				t.Errorf("ClientAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAddrKeyGroupsIPv6By64(t *testing.T) {
	a := addrKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := addrKey(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := addrKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Errorf("keys %s %s %s: want one per /64", a, b, c)
	}
	if k := addrKey(netip.MustParseAddr("192.0.2.1")); k.String() != "192.0.2.1" {
		t.Errorf("IPv4 key %s", k)
	}
}

// limitCounter records OnLimit calls.
type limitCounter struct {
	mu   sync.Mutex
	hits map[string]int
}

func (c *limitCounter) hook(limit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hits == nil {
		c.hits = map[string]int{}
	}
	c.hits[limit]++
}

func (c *limitCounter) get(limit string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[limit]
}

// handshakeFrom makes a polling handshake as the client at addr (through the trusted proxy
// at 127.0.0.1) and returns the status and body.
func handshakeFrom(t *testing.T, ts *testServer, addr string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.url("transport=polling"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", addr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func wantRefused(t *testing.T, status int, body, message string) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if status != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Code != 4 || e.Message != message {
		t.Fatalf("got %d %s, want 403 code 4 %q", status, body, message)
	}
}

var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func TestMaxSessions(t *testing.T) {
	var hits limitCounter
	ts := newTestServer(t, Options{MaxSessions: 2, TrustedProxies: loopbackProxy, OnLimit: hits.hook})
	first := handshakePolling(t, ts)
	handshakePolling(t, ts)
	status, body := handshakeFrom(t, ts, "198.51.100.1")
	wantRefused(t, status, body, "Server full (limit 2 connections)")
	if n := hits.get(LimitSessions); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitSessions, n)
	}
	// A session that ends gives its slot back.
	ts.eio.Session(first).Close()
	ts.waitClose(t)
	if status, body := handshakeFrom(t, ts, "198.51.100.1"); status != 200 {
		t.Fatalf("after a close: %d %s", status, body)
	}
}

func TestMaxSessionsPerAddr(t *testing.T) {
	var hits limitCounter
	ts := newTestServer(t, Options{MaxSessionsPerAddr: 2, TrustedProxies: loopbackProxy, OnLimit: hits.hook})
	for range 2 {
		if status, body := handshakeFrom(t, ts, "198.51.100.1"); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	status, body := handshakeFrom(t, ts, "198.51.100.1")
	wantRefused(t, status, body, "Too many connections from this address (limit 2)")
	// Another address is not affected, nor another host of another IPv6 /64.
	if status, body := handshakeFrom(t, ts, "198.51.100.2"); status != 200 {
		t.Fatalf("another address: %d %s", status, body)
	}
	for range 2 {
		if status, _ := handshakeFrom(t, ts, "2001:db8:0:1::1"); status != 200 {
			t.Fatal("IPv6 client refused")
		}
	}
	status, body = handshakeFrom(t, ts, "2001:db8:0:1::ffff")
	wantRefused(t, status, body, "Too many connections from this address (limit 2)")
	if n := hits.get(LimitSessionsPerAddr); n != 2 {
		t.Errorf("OnLimit(%s) called %d times, want 2", LimitSessionsPerAddr, n)
	}
	if n := ts.eio.Len(); n != 5 {
		t.Errorf("%d sessions open, want 5", n)
	}
}

func TestHandshakeRate(t *testing.T) {
	var hits limitCounter
	// A rate so low that no token comes back during the test: the burst is what passes.
	ts := newTestServer(t, Options{HandshakeRate: 0.001, HandshakeBurst: 3, TrustedProxies: loopbackProxy, OnLimit: hits.hook})
	for range 3 {
		if status, body := handshakeFrom(t, ts, "198.51.100.1"); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	status, body := handshakeFrom(t, ts, "198.51.100.1")
	wantRefused(t, status, body, "Too many connection attempts from this address (limit 0.001 per second)")
	if status, _ := handshakeFrom(t, ts, "198.51.100.2"); status != 200 {
		t.Fatal("another address refused")
	}
	if n := hits.get(LimitHandshakeRate); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitHandshakeRate, n)
	}
}

func TestHandshakeLimiterTable(t *testing.T) {
	l := newHandshakeLimiter(10, 2)
	now := time.Now()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i, want := range []bool{true, true, false} {
		if got := l.allow(a, now); got != want {
			t.Fatalf("handshake %d allowed = %v, want a burst of 2, then refusal", i+1, got)
		}
	}
	l.allow(b, now)
	// After 100ms b has its token back and is forgotten; a still owes one.
	l.prune(now.Add(100 * time.Millisecond))
	if n := l.len(); n != 1 {
		t.Errorf("%d addresses tracked after pruning, want 1", n)
	}
	l.prune(now.Add(time.Second))
	if n := l.len(); n != 0 {
		t.Errorf("%d addresses tracked once all are quiet, want 0", n)
	}
	// The table is bounded: past maxTrackedAddrs new addresses are refused, known ones not.
	for i := range maxTrackedAddrs {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if l.allow(netip.MustParseAddr("198.51.100.9"), now) {
		t.Error("a new address was admitted into a full table")
	}
	if !l.allow(netip.AddrFrom4([4]byte{10, 0, 0, 1}), now) {
		t.Error("a known address with tokens left was refused")
	}
}

// lockedBuffer is a log's destination, read by the test while the server writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPayloadLimitLogged: a client refused for sending more than MaxPayload is logged at info,
// with the limit's name and value, on either transport; the log line is written before the
// session's close is reported.
func TestPayloadLimitLogged(t *testing.T) {
	for _, transport := range []string{"polling", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			var log lockedBuffer
			ts := newTestServer(t, Options{MaxPayload: 100, PingTimeout: pongWait,
				Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo}))})
			big := "4" + strings.Repeat("x", 100)
			var sid string
			if transport == "polling" {
				sid = handshakePolling(t, ts)
				if status, _ := do(t, "POST", ts.url("transport=polling&sid="+sid), big); status != 413 {
					t.Fatalf("status %d, want 413", status)
				}
			} else {
				c := dialWS(t, ts, "")
				_, open := readWS(t, c)
				sid = parseOpen(t, open).SID
				writeWS(t, c, websocket.TextMessage, big)
			}
			if ev := ts.waitClose(t); !errors.Is(ev.err, ErrPayloadTooLarge) {
				t.Fatalf("close %+v, want ErrPayloadTooLarge", ev)
			}
			want := `level=INFO msg="engineio: a client sent more than the payload limit at once; its connection is closed" limit=payload max_bytes=100 sid=` + sid + " address=127.0.0.1 transport=" + transport
			if got := log.String(); !strings.Contains(got, want) {
				t.Errorf("log:\n%s\nwant a line with:\n%s", got, want)
			}
		})
	}
}
