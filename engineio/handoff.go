package engineio

import (
	"fmt"
	"net"
	"sync"
)

// HandoffListener is a net.Listener of connections handed to it, for an http.Server to serve
// the connections Options.PollingHandoff gives back: pass its Handoff as PollingHandoff and
// run the server's Serve on it beside the real listener.
type HandoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewHandoffListener returns a listener reporting addr as its address (the real listener's,
// or nil).
func NewHandoffListener(addr net.Addr) *HandoffListener {
	return &HandoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Handoff gives c to the listener's Accept; once the listener is closed, c is closed instead.
func (l *HandoffListener) Handoff(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next connection handed off, or net.ErrClosed once closed.
func (l *HandoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("engineio: handoff listener: %w", net.ErrClosed)
	}
}

// Close ends Accept and closes connections handed off from then on.
func (l *HandoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewHandoffListener, or "handoff" if it was nil.
func (l *HandoffListener) Addr() net.Addr {
	if l.addr == nil {
		return handoffAddr{}
	}
	return l.addr
}

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }
