package engineio

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// runWebSocket makes conn the session's transport and starts its reader goroutine, and a
// writer if something is queued; the calling HTTP handler then returns, so that nothing of its
// request (net/http's buffers, its stack) stays with the connection.
func (s *Session) runWebSocket(conn *websocket.Conn) {
	conn.SetReadLimit(s.srv.opts.MaxPayload)
	s.mu.Lock()
	if s.closed && !s.flushOnDone {
		s.mu.Unlock()
		conn.Close()
		return
	}
	// A session closed by the server while its client was upgrading still has its last
	// packets and the close packet queued: the writer flushes them, then closes.
	s.ws = conn
	s.probe = nil
	s.transport = TransportWebSocket
	s.upgrading = false
	w := s.wakeLocked()
	s.mu.Unlock()
	s.srv.wg.Add(1)
	go func() {
		defer s.srv.wg.Done()
		s.readLoop(conn)
	}()
	s.wake(w) // also releases the GET pending while the client upgraded
}

// readLoop reads frames until the connection fails or the session ends.
func (s *Session) readLoop(conn *websocket.Conn) {
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			if s.closeWith(readErrorReason(err)) && errors.Is(err, websocket.ErrReadLimit) {
				s.srv.onLimit(LimitPayload)
			}
			return
		}
		var p packet
		if typ == websocket.BinaryMessage {
			p = packet{typ: PacketMessage, data: data, binary: true}
		} else if p, err = decodeTextPacket(data); err != nil {
			s.closeWith(ReasonParseError, err, false)
			return
		}
		if !s.onPacket(p) {
			return
		}
	}
}

func readErrorReason(err error) (string, error, bool) {
	if errors.Is(err, websocket.ErrReadLimit) {
		return ReasonTransportError, ErrPayloadTooLarge, false
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ReasonTransportClose, nil, false
	}
	return ReasonTransportClose, err, false
}

// writeLoop is the WebSocket session's writer while there is something to write: started by
// wake, it drains the queue until it finds it empty, and then ends. At most one runs per
// session (s.writing). After a graceful close it writes the close frame and closes the
// connection; a session dropped otherwise has had its connection closed by closeWith.
func (s *Session) writeLoop(conn *websocket.Conn) {
	defer s.srv.wg.Done()
	for {
		s.mu.Lock()
		closed, flush := s.closed, s.flushOnDone
		if len(s.queue) == 0 && !closed {
			s.writing = false
			s.mu.Unlock()
			return
		}
		batch := s.takeQueueLocked()
		s.mu.Unlock()
		if closed && !flush {
			return
		}
		for _, m := range batch {
			_ = conn.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
			if err := m.writeTo(conn); err != nil {
				s.closeWith(ReasonTransportError, fmt.Errorf("engineio: write: %w", err), false)
				return
			}
		}
		s.recycle(batch)
		if closed {
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(s.srv.opts.WriteTimeout))
			conn.Close()
			return
		}
	}
}

// serveUpgrade takes a polling session to WebSocket: the client probes with "2probe", is
// answered "3probe", its pending poll is released with a noop, and its "5" switches the session.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := s.transport == TransportPolling && !s.upgrading && !s.closed
	if ok {
		s.upgrading = true
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, ErrBadRequest, "")
		return
	}
	conn, err := s.srv.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.abortUpgrade(nil)
		return
	}
	s.mu.Lock()
	s.probe = conn
	s.mu.Unlock()
	conn.SetReadLimit(s.srv.opts.MaxPayload)
	deadline := time.Now().Add(s.srv.opts.UpgradeTimeout)
	_ = conn.SetReadDeadline(deadline)

	// Expect "2probe", answer "3probe" and release the pending poll.
	if !s.readUpgradePacket(conn, PacketPing, "probe") {
		s.abortUpgrade(conn)
		return
	}
	_ = conn.SetWriteDeadline(deadline)
	if err := conn.WriteMessage(websocket.TextMessage, []byte("3probe")); err != nil {
		s.abortUpgrade(conn)
		return
	}
	s.signal()
	// Expect "5"; a client may send noops meanwhile.
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil || typ != websocket.TextMessage {
			s.abortUpgrade(conn)
			return
		}
		p, err := decodeTextPacket(data)
		if err != nil || (p.typ != PacketUpgrade && p.typ != PacketNoop) {
			s.abortUpgrade(conn)
			return
		}
		if p.typ == PacketUpgrade {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	s.runWebSocket(conn)
}

func (s *Session) readUpgradePacket(conn *websocket.Conn, want PacketType, data string) bool {
	typ, msg, err := conn.ReadMessage()
	if err != nil || typ != websocket.TextMessage {
		return false
	}
	p, err := decodeTextPacket(msg)
	return err == nil && p.typ == want && string(p.data) == data
}

// abortUpgrade drops a failed probe; the session goes on over polling.
func (s *Session) abortUpgrade(conn *websocket.Conn) {
	if conn != nil {
		conn.Close()
	}
	s.mu.Lock()
	s.upgrading = false
	s.probe = nil
	s.mu.Unlock()
	s.signal()
}
