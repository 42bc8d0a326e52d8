package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// runWebSocket makes conn the session's transport and starts its reader goroutine, and a
// writer if something is queued; the calling HTTP handler then returns, so that nothing of its
// request (net/http's buffers, its stack) stays with the connection. It is the reader of
// servers without the epoller (see epollWebSocket).
func (s *Session) runWebSocket(conn *websocket.Conn) {
	conn.SetReadLimit(s.srv.opts.MaxPayload)
	nc := conn.NetConn()
	// The writer frames messages itself and writes them straight to the connection, so the
	// control frames gorilla would answer on the reader must go through wmu as well.
	conn.SetPingHandler(func(data string) error {
		return s.writeControl(nc, opPong, []byte(data))
	})
	conn.SetCloseHandler(func(code int, _ string) error {
		var echo []byte
		if code != websocket.CloseNoStatusReceived {
			echo = binary.BigEndian.AppendUint16(nil, uint16(code))
		}
		_ = s.writeControl(nc, opClose, echo)
		return nil
	})
	w, ok := s.useWebSocket(nc)
	if !ok {
		return
	}
	s.srv.goroutines.Go(func() { s.readLoop(conn) })
	s.wake(w) // also releases the GET pending while the client upgraded
}

// useWebSocket makes nc the session's transport, and returns the writer to start, as
// wakeLocked does. ok is false, and nc closed, when the session was dropped meanwhile.
func (s *Session) useWebSocket(nc net.Conn) (w net.Conn, ok bool) {
	s.mu.Lock()
	if s.closed && !s.flushOnDone {
		s.mu.Unlock()
		nc.Close()
		return nil, false
	}
	// A session closed by the server while its client was upgrading still has its last
	// packets and the close packet queued: the writer flushes them, then closes.
	s.ws = nc
	s.probe = nil
	s.onWS = true
	s.upgrading = false
	w = s.wakeLocked()
	s.mu.Unlock()
	return w, true
}

// closeConn closes the session's WebSocket connection, first taking it off the epoller.
func (s *Session) closeConn(nc net.Conn) {
	s.mu.Lock()
	s.wsClosed = true
	pc := s.pc
	s.mu.Unlock()
	if pc != nil {
		s.srv.epoll.remove(pc)
	}
	nc.Close()
}

// readLoop reads frames until the connection fails or the session ends.
func (s *Session) readLoop(conn *websocket.Conn) {
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			s.closeOnReadError(err)
			return
		}
		var p packet
		if typ == websocket.BinaryMessage {
			p, err = s.decodeBinaryFrame(data)
		} else {
			p, err = s.decodeTextFrame(data)
		}
		if err != nil {
			s.closeWith(ReasonParseError, err, false)
			return
		}
		if !s.onPacket(p) {
			return
		}
	}
}

// decodeBinaryFrame decodes a binary WebSocket message: v4's is the message itself, v3's
// starts with the message type byte.
func (s *Session) decodeBinaryFrame(data []byte) (packet, error) {
	if s.protocol == 3 {
		return decodeBinaryFrameV3(data)
	}
	return packet{typ: packetMessage, data: data, binary: true}, nil
}

// decodeTextFrame decodes a text WebSocket message: a packet in text form, which in v3 may
// also be a binary message in base64.
func (s *Session) decodeTextFrame(data []byte) (packet, error) {
	if s.protocol == 3 {
		return decodeTextPacketV3(data)
	}
	return decodeTextPacket(data)
}

// closeOnReadError ends the session whose WebSocket could not be read, counting a message over
// MaxPayload as a limit hit.
func (s *Session) closeOnReadError(err error) {
	reason, cause, graceful := readErrorReason(err)
	if errors.Is(err, websocket.ErrReadLimit) {
		s.closeOverLimit(LimitPayload, reason, cause, graceful)
		return
	}
	s.closeWith(reason, cause, graceful)
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

// writeNowLocked writes msgs to the WebSocket on the caller's goroutine, with s.mu held, when
// nothing waits before them (no writer running, nothing queued) and the socket takes them
// without waiting: a delivery to a client that keeps up then costs no goroutine, no deadline
// and no timer. s.mu held keeps any other Send from writing or starting a writer meanwhile;
// wmu is taken only if it is free (a control frame being written: the messages are queued).
// Only a socket of the poller is written so (its epollConn's writeNow), and only messages
// that are one frame each (Message.wire). It returns what it did not write, to be queued,
// and rest, the end of a frame the socket took only in part: wmu is then left locked, for
// the writer that wakeRest starts to write rest first.
func (s *Session) writeNowLocked(msgs []*Message) (unwritten []*Message, rest []byte) {
	pc := s.pc
	if pc == nil || s.ws == nil || s.wsClosed || s.writing || len(s.queue) > 0 {
		return msgs, nil
	}
	for _, m := range msgs {
		if m.wire == nil {
			return msgs, nil
		}
	}
	if !s.wmu.TryLock() {
		return msgs, nil
	}
	for i, m := range msgs {
		n, err := pc.writeNow(m.wire)
		switch {
		case err == nil && n == len(m.wire):
			continue
		case err == nil && n > 0:
			return msgs[i+1:], m.wire[n:]
		default:
			// A full socket, or an error, which the writer meets again and acts on.
			s.wmu.Unlock()
			return msgs[i:], nil
		}
	}
	s.wmu.Unlock()
	return nil, nil
}

// writeLoop is the WebSocket session's writer while there is something to write: started by
// wake, it drains the queue until it finds it empty, and then ends. At most one runs per
// session (s.writing). After a graceful close it writes the close frame and closes the
// connection; a session dropped otherwise has had its connection closed by closeWith. rest,
// when not nil, is the end of a frame that writeNowLocked wrote in part, with wmu held for
// it: it is written first, then wmu released.
func (s *Session) writeLoop(conn net.Conn, rest []byte) {
	if rest != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
		_, err := conn.Write(rest)
		s.wmu.Unlock()
		if err != nil {
			s.closeWith(ReasonTransportError, fmt.Errorf("engineio: write: %w", err), false)
			s.closeConn(conn)
			return
		}
	}
	var bufs [][]byte
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
		if err := s.writeFrames(conn, batch, &bufs); err != nil {
			s.closeWith(ReasonTransportError, fmt.Errorf("engineio: write: %w", err), false)
			// A session closed already (a graceful close being flushed) is not closed again
			// by closeWith: its connection is closed here.
			s.closeConn(conn)
			return
		}
		s.recycle(batch)
		if closed {
			_ = s.writeControl(conn, opClose, binary.BigEndian.AppendUint16(nil, websocket.CloseNormalClosure))
			s.closeConn(conn)
			return
		}
	}
}

// framesPerWrite bounds the frames of one writev, and so what one WriteTimeout covers.
const framesPerWrite = 64

// writeFrames writes the batch's frames, up to framesPerWrite of them in one writev: a client
// that fell behind (a burst of broadcasts) gets its backlog in a few system calls, not one per
// message. bufs is the writer's scratch, kept across calls.
func (s *Session) writeFrames(nc net.Conn, batch []*Message, bufs *[][]byte) error {
	if s.protocol == 3 {
		return s.writeFramesV3(nc, batch, bufs)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(batch) == 1 && batch[0].wire != nil {
		_ = nc.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
		_, err := nc.Write(batch[0].wire)
		return err
	}
	for len(batch) > 0 {
		n := min(len(batch), framesPerWrite)
		b := (*bufs)[:0]
		for _, m := range batch[:n] {
			b = append(b, m.header[:m.headerLen], m.frame)
		}
		*bufs = b
		batch = batch[n:]
		_ = nc.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
		v := net.Buffers(b)
		if _, err := v.WriteTo(nc); err != nil {
			return err
		}
	}
	return nil
}

// v3TypeByte is what a v3 binary frame starts with: the message packet type.
var v3TypeByte = []byte{byte(packetMessage)}

// writeFramesV3 is writeFrames for a v3 session, whose binary frames start with the message
// type byte: a binary message is written with a header of its own, the type byte, and its
// data.
func (s *Session) writeFramesV3(nc net.Conn, batch []*Message, bufs *[][]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	headers := make([]byte, 0, framesPerWrite*maxFrameHeader)
	for len(batch) > 0 {
		n := min(len(batch), framesPerWrite)
		b := (*bufs)[:0]
		headers = headers[:0]
		for _, m := range batch[:n] {
			if !m.binary {
				b = append(b, m.header[:m.headerLen], m.frame)
				continue
			}
			start := len(headers)
			headers = headers[:start+appendFrameHeader(headers[start:], opBinary, len(m.frame)+1)]
			b = append(b, headers[start:], v3TypeByte, m.frame)
		}
		*bufs = b
		batch = batch[n:]
		_ = nc.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
		v := net.Buffers(b)
		if _, err := v.WriteTo(nc); err != nil {
			return err
		}
	}
	return nil
}

// writeControl writes one control frame (its payload at most 125 bytes), between the writer's
// writes.
func (s *Session) writeControl(nc net.Conn, op byte, payload []byte) error {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	frame := make([]byte, 0, 2+len(payload))
	frame = frame[:appendFrameHeader(frame, op, len(payload))]
	frame = append(frame, payload...)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = nc.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
	_, err := nc.Write(frame)
	return err
}

// serveUpgrade takes a polling session to WebSocket: the client probes with "2probe", is
// answered "3probe", its pending poll is released with a noop, and its "5" switches the session.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	// A session on WebSocket already, or upgrading to it, keeps the WebSocket it has.
	taken := s.onWS || s.upgrading
	if !closed && !taken {
		s.upgrading = true
	}
	s.mu.Unlock()
	if closed {
		writeError(w, codeBadRequest, "")
		return
	}
	if taken {
		s.srv.closeAfterHandshake(w, r)
		return
	}
	conn, err := s.srv.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.abortUpgrade(nil)
		return
	}
	nc := conn.NetConn()
	s.mu.Lock()
	s.probe = nc
	s.mu.Unlock()
	deadline := time.Now().Add(s.srv.opts.UpgradeTimeout)
	if s.srv.epoll != nil && epollable(nc) {
		s.probeEpolled(nc, deadline)
		return
	}
	conn.SetReadLimit(s.srv.opts.MaxPayload)
	_ = conn.SetReadDeadline(deadline)

	// Expect "2probe", answer "3probe" and release the pending poll.
	if !s.readUpgradePacket(conn, packetPing, "probe") {
		s.abortUpgrade(nc)
		return
	}
	_ = conn.SetWriteDeadline(deadline)
	if err := conn.WriteMessage(websocket.TextMessage, []byte("3probe")); err != nil {
		s.abortUpgrade(nc)
		return
	}
	s.signal()
	// Expect "5"; a client may send noops meanwhile.
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil || typ != websocket.TextMessage {
			s.abortUpgrade(nc)
			return
		}
		p, err := decodeTextPacket(data)
		if err != nil || (p.typ != packetUpgrade && p.typ != packetNoop) {
			s.abortUpgrade(nc)
			return
		}
		if p.typ == packetUpgrade {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	s.runWebSocket(conn)
}

func (s *Session) readUpgradePacket(conn *websocket.Conn, want packetType, data string) bool {
	typ, msg, err := conn.ReadMessage()
	if err != nil || typ != websocket.TextMessage {
		return false
	}
	p, err := decodeTextPacket(msg)
	return err == nil && p.typ == want && string(p.data) == data
}

// abortUpgrade drops a failed probe; the session goes on over polling.
func (s *Session) abortUpgrade(conn net.Conn) {
	if conn != nil {
		conn.Close()
	}
	s.mu.Lock()
	s.upgrading = false
	s.probe = nil
	s.mu.Unlock()
	s.signal()
}

// closeHandshakeTimeout bounds how long closeAfterHandshake waits for the client to answer
// its close frame (Node's ws waits 30 s).
const closeHandshakeTimeout = 5 * time.Second

// closeAfterHandshake answers a WebSocket that no session takes (one for a session that has
// its own) as Node's engine.io does: it completes the handshake, sends a close frame
// without status code, and closes the connection once the client has answered it, or after
// closeHandshakeTimeout. A client so sees the WebSocket closed (code 1005), not refused.
// It runs on the request's goroutine.
func (s *Server) closeAfterHandshake(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	deadline := time.Now().Add(closeHandshakeTimeout)
	if err := conn.WriteControl(websocket.CloseMessage, nil, deadline); err != nil {
		return
	}
	// What the client sends before its close frame is read and dropped; gorilla's reply to
	// the close frame fails quietly, ours being sent.
	conn.SetReadLimit(s.opts.MaxPayload)
	_ = conn.SetReadDeadline(deadline)
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}
