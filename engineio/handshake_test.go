package engineio

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestHandshakeHeader: the headers a session keeps come back as they were given, repeated and
// empty values, long values (lengths of more than one varint byte) and no headers at all.
func TestHandshakeHeader(t *testing.T) {
	for _, hdr := range []http.Header{
		{},
		{"Host": {"example.com"}},
		{"Host": {"example.com"}, "X-Many": {"a", "", "b"}, "Empty": {""}, "Cookie": {strings.Repeat("c", 70000)}},
	} {
		var h Handshake
		h.SetHeader(hdr)
		if got := h.Header(); !reflect.DeepEqual(got, hdr) {
			t.Errorf("Header() = %v, want %v", got, hdr)
		}
	}
	var zero Handshake
	if got := zero.Header(); got == nil || len(got) != 0 {
		t.Errorf("zero Handshake's Header() = %#v, want an empty map", got)
	}
}

// A session's handshake URL and headers are one allocation, and each reads as it was given.
func TestHandshakeURLAndHeader(t *testing.T) {
	for _, tc := range []struct {
		url string
		hdr http.Header
	}{
		{"/socket.io/?EIO=4&transport=websocket", http.Header{"Host": {"example.com"}, "X-Many": {"a", "", "b"}}},
		{"/socket.io/?EIO=4&transport=polling", http.Header{}},
		{"", http.Header{"Host": {"example.com"}}},
	} {
		var h Handshake
		h.setURLAndHeader(tc.url, tc.hdr)
		if h.URL != tc.url {
			t.Errorf("URL = %q, want %q", h.URL, tc.url)
		}
		if got := h.Header(); !reflect.DeepEqual(got, tc.hdr) {
			t.Errorf("Header() = %v, want %v", got, tc.hdr)
		}
		if tc.url != "" && h.header != "" {
			end := unsafe.Add(unsafe.Pointer(unsafe.StringData(h.URL)), len(h.URL))
			if end != unsafe.Pointer(unsafe.StringData(h.header)) {
				t.Errorf("%s: the URL and the headers are two allocations", tc.url)
			}
		}
	}
}
