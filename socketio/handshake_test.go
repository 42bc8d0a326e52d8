package socketio

import (
	"net/http"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/engineio"
)

// TestHandshakeHeaders: header names are lower-cased (the usual ones from constants, others
// computed), repeated values joined with ", ", the address taken from RemoteAddr when no
// client address was set.
func TestHandshakeHeaders(t *testing.T) {
	h := &engineio.Handshake{
		RemoteAddr: "127.0.0.1:5000",
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
	// A Handshake made by hand has the zero handshake time: the Unix epoch.
	if hs.Time != "1970-01-01T00:00:00.000Z" || hs.Issued != 0 {
		t.Errorf("time %q, issued %d", hs.Time, hs.Issued)
	}
	for _, k := range []string{"Accept-Language", "X-Forwarded-Proto", "Sec-Websocket-Key", "Cookie", "X-Whatever", "Dnt"} {
		if got := lowerHeaderName(k); got != strings.ToLower(k) {
			t.Errorf("lowerHeaderName(%q) = %q", k, got)
		}
	}
}
