package socketio

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// TestCloseDuringConnectHandlers: a connection that ends while a socket's connect handlers
// run (the server shutting down just after answering the CONNECT) still runs the disconnect
// handlers they register, once they have returned. The namespace has an authorizer, as
// siobridge's have, so the handlers run on a goroutine of their own and not on the reader.
func TestCloseDuringConnectHandlers(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	entered := make(chan *Socket, 1)
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the server's cleanup, which waits for the handler
	reasons := make(chan string, 1)
	srv.Of("/").Authorize(func(context.Context, *ConnectRequest) (*Admission, error) { return nil, nil })
	srv.Of("/").OnConnect(func(s *Socket) {
		entered <- s
		<-release
		s.OnDisconnect(func(reason string) { reasons <- reason })
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Write("40")
	s := recv(t, entered)
	c.Conn.Close() // the connection ends while the handler runs

	// Wait until the close has reached the socket: only then may the handler go on.
	deadline := time.Now().Add(5 * time.Second)
	for s.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the socket still reads as connected 5s after its connection closed")
		}
		time.Sleep(time.Millisecond)
	}
	open()
	if got := recv(t, reasons); got != "transport close" {
		t.Errorf("disconnect reason %q, want transport close", got)
	}
	if s.Connected() {
		t.Error("the socket reads as connected after its disconnect")
	}
}
