package edge

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// watch is what a guarded connection keeps: the framer of the requests read from it (until it
// stops), the bytes given back to be read again (Unread), and its verdict.
type watch struct {
	g   *Guard
	key netip.Addr // its place in the per-address count; invalid: not counted by address

	mu      sync.Mutex
	framer  *framer // nil once it stopped: an upgraded connection keeps none
	prefix  []byte
	verdict atomic.Pointer[Verdict]
	closed  atomic.Bool
	counted bool // in the listener's count (until Close); beside closed, to share its word
}

// read is Read: the prefix first, then the bytes of socket, the connection watched, all
// watched.
func (w *watch) read(p []byte, socket net.Conn) (int, error) {
	w.mu.Lock()
	if len(w.prefix) > 0 {
		n := copy(p, w.prefix)
		w.prefix = w.prefix[n:]
		w.see(p[:n], socket)
		w.mu.Unlock()
		return n, nil
	}
	w.mu.Unlock()
	n, err := socket.Read(p)
	if n > 0 {
		w.mu.Lock()
		w.see(p[:n], socket)
		w.mu.Unlock()
	}
	return n, err
}

// see feeds bytes read from socket to the framer; w.mu is held. The socket is asked for the
// client's address only to log a refusal, so that the watch keeps no copy of it.
func (w *watch) see(p []byte, socket net.Conn) {
	if w.framer == nil {
		return
	}
	w.framer.feed(p)
	if v := w.framer.verdict; v.Status != 0 && w.verdict.CompareAndSwap(nil, &v) {
		// Counted and logged here: net/http may answer the request itself (a header too
		// large for it to finish reading) and never call the handler.
		w.g.count(v.Limit)
		w.g.log.Debug("edge: request refused", "status", v.Status, "reason", v.Reason, "addr", socket.RemoteAddr())
	}
	if w.framer.stopped() {
		w.framer = nil
	}
}

// through reports whether the framer has stopped and nothing is left to give back: the
// socket's bytes may then be read without being watched.
func (w *watch) through() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.framer == nil && len(w.prefix) == 0
}

func (w *watch) unread(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prefix = append(p[:len(p):len(p)], w.prefix...)
	if w.framer != nil {
		// p begins a request: the server that read it gives it back whole. A framer that
		// stopped (a refusal, or an upgrade: what follows is not HTTP) stays stopped.
		w.framer.startHead()
	}
}

func (w *watch) takeUnread() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.prefix
	w.prefix = nil
	return p
}

// close releases the connection's place in the listener's count, once.
func (w *watch) close() {
	if w.closed.CompareAndSwap(false, true) && w.counted {
		w.g.release(w.key)
	}
}

// Conn is a TCP connection of a guarded listener. It embeds the socket, so that whoever takes
// it from net/http (a WebSocket, a held poll) reads and writes the socket itself: through
// SyscallConn, and with writev (net.Buffers). Its Read is watched; see Unread.
type Conn struct {
	*net.TCPConn
	w watch // in the Conn itself: a connection is one allocation, not two
}

// Read reads what Unread gave back, then the socket.
func (c *Conn) Read(p []byte) (int, error) { return c.w.read(p, c.TCPConn) }

// WriteTo copies what is read to dst; it reads through Read while the requests are watched.
func (c *Conn) WriteTo(dst io.Writer) (int64, error) {
	if c.w.through() {
		return c.TCPConn.WriteTo(dst)
	}
	return io.Copy(dst, readerOnly{c})
}

// Close closes the socket and releases its place in the listener's count.
func (c *Conn) Close() error {
	c.w.close()
	return c.TCPConn.Close()
}

// Unread makes the next Reads return p before the socket's bytes: the start of the next
// request, read from the socket by a server that held the connection (engineio's held
// polls) and now gives it back to net/http. The requests are watched from there.
func (c *Conn) Unread(p []byte) { c.w.unread(p) }

// TakeUnread returns what of the bytes given to Unread has not been read yet, and forgets
// them: a server taking the connection from net/http reads them first.
func (c *Conn) TakeUnread() []byte { return c.w.takeUnread() }

// otherConn is a guarded connection that is not TCP.
type otherConn struct {
	net.Conn
	w watch
}

func (c *otherConn) Read(p []byte) (int, error) { return c.w.read(p, c.Conn) }
func (c *otherConn) Close() error {
	c.w.close()
	return c.Conn.Close()
}
func (c *otherConn) Unread(p []byte)    { c.w.unread(p) }
func (c *otherConn) TakeUnread() []byte { return c.w.takeUnread() }

type readerOnly struct{ io.Reader }

// watchOf returns the watch of a guarded connection, or nil.
func watchOf(c net.Conn) *watch {
	switch c := c.(type) {
	case *Conn:
		return &c.w
	case *otherConn:
		return &c.w
	}
	return nil
}
