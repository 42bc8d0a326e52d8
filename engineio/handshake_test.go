package engineio

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
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
