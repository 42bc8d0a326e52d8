package socketio

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// A Socket is kept per connection, with its rooms on it: past 160 bytes it takes the next
// size class, 16 bytes more for every idle connection.
func TestSocketSize(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 160 {
		t.Errorf("Socket is %d bytes, over the 160-byte size class", n)
	}
}

// Disconnect handlers run once each, in the order they were added, with the reason.
func TestOnDisconnectOrder(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	calls := make(chan string, 8)
	srv.Of("/").OnConnect(func(s *Socket) {
		for _, name := range []string{"a", "b", "c"} {
			s.OnDisconnect(func(reason string) { calls <- name + " " + reason })
		}
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	c.Write("41")
	var got []string
	for range 3 {
		got = append(got, recv(t, calls))
	}
	want := "a client namespace disconnect,b client namespace disconnect,c client namespace disconnect"
	if strings.Join(got, ",") != want {
		t.Fatalf("handlers ran as %v", got)
	}
	select {
	case extra := <-calls:
		t.Fatalf("a handler ran again: %s", extra)
	default:
	}
}
