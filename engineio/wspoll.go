package engineio

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/engineio/internal/wsframe"
)

// This file is the session's side of the poller (see epoller): a WebSocket read by the
// server's poller instead of a goroutine of its own. What is read is parsed by the session's
// wsframe.Reader and handled here, on whichever goroutine read it, one at a time per session.

// startWebSocket hands a WebSocket opened by the handshake to the poller, or to a reader
// goroutine when the server has no poller or cannot poll the connection.
func (s *Session) startWebSocket(conn *websocket.Conn) {
	if nc := conn.NetConn(); s.srv.epoll != nil && epollable(nc) {
		s.epollWebSocket(nc, wsframe.NewReader(s.srv.opts.MaxPayload))
		return
	}
	s.runWebSocket(conn)
}

// epollable reports whether the epoller can read nc: a plain TCP or Unix socket, read by the
// poller's system calls, or a PassThroughConn with nothing to be read again. A TLS
// connection, or any other wrapper, is left to a reader goroutine.
func epollable(nc net.Conn) bool {
	switch c := nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	case PassThroughConn:
		if p := c.TakeUnread(); len(p) > 0 {
			c.Unread(p) // read through the wrapper, by a goroutine
			return false
		}
		return true
	}
	return false
}

// PassThroughConn is a connection that wraps a socket and passes its bytes through unchanged,
// to watch or count them, as siobridge's public listener does. When the server takes such a
// connection from net/http (a WebSocket, a held poll), it reads and writes the socket itself,
// through SyscallConn, once it has taken what the wrapper holds to be read again
// (TakeUnread); when it gives a held connection back to net/http (Options.PollingHandoff), it
// gives what it read of the next request back with Unread, so that the wrapper reads the
// requests from there. Close must close the socket.
type PassThroughConn interface {
	net.Conn
	syscall.Conn
	// Unread makes the next Reads return p before the socket's bytes, as the start of a request.
	Unread(p []byte)
	// TakeUnread returns what of the bytes given to Unread Read has not returned, and forgets them.
	TakeUnread() []byte
}

// epollWebSocket makes nc the session's transport and registers it with the poller; fr is the
// frame reader, holding any frame begun during the upgrade.
func (s *Session) epollWebSocket(nc net.Conn, fr wsframe.Reader) {
	w, ok := s.useWebSocket(nc)
	if !ok {
		return
	}
	s.wake(w) // also releases the GET pending while the client upgraded
	s.epollOrClose(nc, fr)
}

// epollOrClose registers the session's WebSocket with the poller, or ends the session when it
// cannot be (the server is closing). Its connection is the session's already: closeWith
// closes it, or, for a session closed before with a graceful close, its writer does once it
// has flushed.
func (s *Session) epollOrClose(nc net.Conn, fr wsframe.Reader) {
	// A deadline left by the HTTP server would fail the poller's reads.
	_ = nc.SetReadDeadline(time.Time{})
	if err := s.srv.epoll.add(s, nc, fr); err != nil {
		s.closeWith(ReasonTransportError, fmt.Errorf("engineio: poll: %w", err), false)
	}
}

// probeEpolled is serveUpgrade's probe for a server with a poller: the same exchange read with
// the session's own frame reader, which keeps whatever the client sent after its "5" (the
// first messages of the upgraded session) and goes on with it under the poller.
func (s *Session) probeEpolled(nc net.Conn, deadline time.Time) {
	_ = nc.SetReadDeadline(deadline)
	fr := wsframe.NewReader(s.srv.opts.MaxPayload)
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	gotProbe := false
	for {
		n, rerr := nc.Read(*bp)
		data := (*bp)[:n]
		for len(data) > 0 {
			k, ev, err := fr.Next(data)
			data = data[k:]
			if err != nil {
				s.abortUpgrade(nc)
				return
			}
			switch ev.Op {
			case 0, wsframe.OpPong:
				continue
			case wsframe.OpPing:
				_ = s.writeControl(nc, opPong, ev.Data)
				continue
			case wsframe.OpText:
			default:
				s.abortUpgrade(nc)
				return
			}
			p, err := decodeTextPacket(ev.Data)
			switch {
			case err != nil:
				s.abortUpgrade(nc)
				return
			case !gotProbe:
				// Expect "2probe", answer "3probe" and release the pending poll.
				if p.typ != packetPing || string(p.data) != "probe" || s.writeProbeAnswer(nc, deadline) != nil {
					s.abortUpgrade(nc)
					return
				}
				gotProbe = true
				s.signal()
			case p.typ == packetNoop: // a client may send noops while it waits
			case p.typ == packetUpgrade:
				_ = nc.SetReadDeadline(time.Time{})
				w, ok := s.useWebSocket(nc)
				if !ok {
					return
				}
				s.wake(w)
				// What followed the "5" in this read is the session's already.
				if !s.consumeWS(nc, &fr, data) {
					return
				}
				s.epollOrClose(nc, fr)
				return
			default:
				s.abortUpgrade(nc)
				return
			}
		}
		if rerr != nil {
			s.abortUpgrade(nc)
			return
		}
	}
}

// writeProbeAnswer writes the "3probe" frame.
func (s *Session) writeProbeAnswer(nc net.Conn, deadline time.Time) error {
	m := newPacket(packetPong, []byte("probe"))
	_ = nc.SetWriteDeadline(deadline)
	b := net.Buffers{m.header[:m.headerLen], m.frame}
	_, err := b.WriteTo(nc)
	return err
}

// consumeWS parses data, read from the session's WebSocket, and handles what it completes.
// It returns false once the session has ended or the connection failed: reading stops.
func (s *Session) consumeWS(nc net.Conn, fr *wsframe.Reader, data []byte) bool {
	for len(data) > 0 {
		k, ev, err := fr.Next(data)
		data = data[k:]
		if err != nil {
			s.wsReadFailed(nc, err)
			return false
		}
		if !s.onWSEvent(nc, ev) {
			return false
		}
	}
	return true
}

// onWSEvent handles one message or control frame, as readLoop and the handlers it gives
// gorilla do.
func (s *Session) onWSEvent(nc net.Conn, ev wsframe.Event) bool {
	switch ev.Op {
	case wsframe.OpBinary:
		if s.protocol == 4 {
			return s.onPacket(packet{typ: packetMessage, data: ev.Data, binary: true})
		}
		p, err := decodeBinaryFrameV3(ev.Data)
		if err != nil {
			s.closeWith(ReasonParseError, err, false)
			return false
		}
		return s.onPacket(p)
	case wsframe.OpText:
		p, err := s.decodeTextFrame(ev.Data)
		if err != nil {
			s.closeWith(ReasonParseError, err, false)
			return false
		}
		return s.onPacket(p)
	case wsframe.OpPing:
		if err := s.writeControl(nc, opPong, ev.Data); err != nil {
			s.closeWith(readErrorReason(err))
			return false
		}
	}
	return true
}

// wsReadFailed ends the session whose WebSocket could not be read on: the client closed it,
// broke the protocol, sent too much, or the connection failed. The client is told why with a
// close frame where gorilla would tell it.
func (s *Session) wsReadFailed(nc net.Conn, err error) {
	if payload, ok := wsframe.CloseReply(err); ok {
		_ = s.writeControl(nc, opClose, payload)
	}
	s.closeOnReadError(err)
}

// readBufSize is the size of the buffers that WebSockets are read into: one per read in
// progress, shared by all connections, none held by an idle one.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any {
	b := make([]byte, readBufSize)
	return &b
}}
