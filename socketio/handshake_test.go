package socketio

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// TestHandshakeHeaders: header names are lower-cased (the usual ones from constants, others
// computed), repeated values joined with ", ", the address taken from RemoteAddr when no
// client address was set.
func TestHandshakeHeaders(t *testing.T) {
	h := &engineio.Handshake{
		RemoteAddr: "127.0.0.1:5000",
		Time:       time.Unix(0, 0),
	}
	h.SetHeader(http.Header{
		"User-Agent":            {"test"},
		"Sec-Websocket-Version": {"13"},
		"X-Custom-Thing":        {"a", "b"},
		"Accept":                {"*/*"},
	})
	hs := newHandshake(h, nil)
	want := map[string]string{"user-agent": "test", "sec-websocket-version": "13", "x-custom-thing": "a, b", "accept": "*/*"}
	if len(hs.Headers) != len(want) {
		t.Fatalf("headers %v, want %v", hs.Headers, want)
	}
	for k, v := range want {
		if hs.Headers[k] != v {
			t.Errorf("header %q = %q, want %q", k, hs.Headers[k], v)
		}
	}
	if hs.Address != "127.0.0.1" || string(hs.Auth) != "{}" {
		t.Errorf("address %q, auth %s", hs.Address, hs.Auth)
	}
	for _, k := range []string{"Accept-Language", "X-Forwarded-Proto", "Sec-Websocket-Key", "Cookie", "X-Whatever", "Dnt"} {
		if got := lowerHeaderName(k); got != strings.ToLower(k) {
			t.Errorf("lowerHeaderName(%q) = %q", k, got)
		}
	}
}
