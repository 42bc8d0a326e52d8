package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Handshake is what a session's first request told the server, kept for the layers above.
type Handshake struct {
	// RemoteAddr is the client's address as the HTTP server saw it (host:port).
	RemoteAddr string
	// Address is the client's IP address as ClientAddr tells it: RemoteAddr's host, or the
	// address a trusted proxy forwarded for. Empty when RemoteAddr is no IP address.
	Address string
	// URL is the handshake request's URL, path and query; Query parses the query.
	URL string
	// Secure is true when the handshake came over TLS.
	Secure bool
	// unixNano is when the handshake was made (Time), in nanoseconds since the Unix epoch: 8
	// bytes a session keeps instead of a time.Time's 24.
	unixNano int64
	// header holds the handshake request's headers, packed by SetHeader into one string: an
	// idle session keeps one allocation of them instead of a map, its value slices and a
	// string per value (about 650 bytes for a browser's WebSocket upgrade, against 200).
	header string
}

// Time is when the handshake was made.
func (h *Handshake) Time() time.Time { return time.Unix(0, h.unixNano) }

// Header returns the handshake request's headers, unpacked into a new map on each call.
func (h *Handshake) Header() http.Header {
	hdr := make(http.Header)
	rest := h.header
	for len(rest) > 0 {
		var k, v string
		k, rest = unpackString(rest)
		v, rest = unpackString(rest)
		hdr[k] = append(hdr[k], v)
	}
	return hdr
}

// SetHeader keeps a copy of hdr as the handshake request's headers: each value with its name,
// each as its length (a uvarint) and its bytes, in one string.
func (h *Handshake) SetHeader(hdr http.Header) {
	h.header = string(appendHeader(make([]byte, 0, headerSize(hdr)), hdr))
}

// setURLAndHeader sets URL and the headers (as SetHeader does) in one allocation, which a
// session keeps as long as it lives, rather than one for each.
func (h *Handshake) setURLAndHeader(url string, hdr http.Header) {
	b := make([]byte, 0, len(url)+headerSize(hdr))
	s := string(appendHeader(append(b, url...), hdr))
	h.URL, h.header = s[:len(url)], s[len(url):]
}

// headerSize is at least the bytes appendHeader appends for hdr.
func headerSize(hdr http.Header) int {
	n := 0
	for k, vs := range hdr {
		for _, v := range vs {
			n += len(k) + len(v) + 2*binary.MaxVarintLen16
		}
	}
	return n
}

// appendHeader appends hdr to b packed as SetHeader keeps it.
func appendHeader(b []byte, hdr http.Header) []byte {
	for k, vs := range hdr {
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// unpackString reads one of SetHeader's strings from the front of p, and returns it and the
// rest, which is empty when p is cut short.
func unpackString(p string) (s, rest string) {
	var n uint64
	for i := 0; i < len(p) && i < binary.MaxVarintLen64; i++ {
		n |= uint64(p[i]&0x7f) << (7 * i)
		if p[i] < 0x80 {
			p = p[i+1:]
			if uint64(len(p)) < n {
				return "", ""
			}
			return p[:n], p[n:]
		}
	}
	return "", ""
}

// Session is one Engine.IO connection, whatever its transport.
type Session struct {
	srv       *Server
	id        string
	handshake Handshake
	handler   SessionHandler

	// lastRecv is when a v3 session last received a packet, in Unix nanoseconds: its client
	// pings, and any packet proves it alive (as in Node's engine.io). The heartbeat schedule
	// reads it when the session's deadline comes, so a packet costs a store, not a
	// rescheduling.
	lastRecv atomic.Int64

	// wmu serializes writes to the WebSocket: the writer's frames, the control frames the
	// reader answers (pong, close), and those Send writes itself (writeNowLocked). When Send
	// writes a frame only in part, it hands wmu, still locked, to the writer it starts for
	// the rest, so that no other frame cuts into it.
	wmu sync.Mutex

	// deliverMu serializes calls into handler.OnMessage, so that a client breaking the protocol
	// (a POST racing a WebSocket) still cannot reach the handler from two goroutines at once.
	deliverMu sync.Mutex

	mu sync.Mutex
	// The flags guarded by mu, side by side (a session is kept for each connection).
	closed      bool
	getActive   bool
	postActive  bool
	upgrading   bool
	writing     bool // a WebSocket writer goroutine is running (see wakeLocked), or deferred
	deferred    bool // the writer is deferred, to be started by Server.Flush (EnqueueBatched)
	wsClosed    bool // ws is closed (closeConn)
	awaitPong   bool
	flushOnDone bool // a server-side close: flush the queue (with a close packet) before closing
	onWS        bool // the session's transport is WebSocket (else polling): see Transport
	// protocol is the Engine.IO protocol, 3 or 4, fixed at the handshake (not guarded: never
	// written after). It and beatIdx sit beside the flags so that they share their word.
	protocol uint8
	// beatIdx is the session's index in the server's heartbeat schedule (guarded by
	// heartbeats.mu), -1 when it has no heartbeat scheduled; beatAt is its due time.
	beatIdx int32
	queue   []*Message
	spare   []*Message // the drained queue's array, reused so steady traffic allocates nothing
	// wake has room for one signal: the queue has something, or the state changed. Its one
	// consumer is the pending GET (polling); a session opened over WebSocket has none (nil:
	// signal is then a no-op).
	wakeCh chan struct{}
	// done is closed when the session ends; made by the first doneLocked, so that a session
	// nobody waits on (an idle WebSocket's) has none.
	done  chan struct{}
	ws    net.Conn // the WebSocket's connection, once the session is on it
	probe net.Conn // the WebSocket of an upgrade in progress
	// pc is ws's registration with the server's epoller, if it has one.
	pc *epollConn
	// parked is the held connection of the pending GET, when it waits there without a
	// goroutine (see heldConn); getActive is then true. Written under mu; atomic so that
	// signal can tell without the lock that there is none (the common case: a WebSocket
	// session upgraded from polling signals on every message).
	parked atomic.Pointer[heldConn]
	// beatAt is when the session's next heartbeat is due, since heartbeats.base (guarded by
	// heartbeats.mu).
	beatAt time.Duration
}

// Query returns the handshake request's query parameters, parsed from URL at each call: a
// session keeps only the URL string, since the parameters are rarely asked for again.
func (h *Handshake) Query() url.Values {
	_, q, _ := strings.Cut(h.URL, "?")
	v, _ := url.ParseQuery(q) // what parses is kept, as net/http's URL.Query does
	return v
}

func newSession(s *Server, r *http.Request, transport string, protocol int) *Session {
	sess := &Session{
		srv:      s,
		id:       newID(),
		protocol: uint8(protocol),
		handshake: Handshake{
			RemoteAddr: r.RemoteAddr,
			Secure:     r.TLS != nil,
			unixNano:   time.Now().UnixNano(),
		},
		onWS:    transport == TransportWebSocket,
		beatIdx: -1,
	}
	sess.handshake.setURLAndHeader(r.URL.RequestURI(), r.Header)
	if transport == TransportPolling {
		sess.wakeCh = make(chan struct{}, 1)
	}
	return sess
}

// ID is the session id, the sid the client sends on every request.
func (s *Session) ID() string { return s.id }

// Handshake returns what the session's first request carried. It is the session's own: read
// it, do not change it (the session finds its per-address count from Address at its end).
func (s *Session) Handshake() *Handshake { return &s.handshake }

// Transport is the session's current transport name.
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transportLocked()
}

// transportLocked is Transport with s.mu held.
func (s *Session) transportLocked() string {
	if s.onWS {
		return TransportWebSocket
	}
	return TransportPolling
}

// Protocol is the session's Engine.IO protocol version: 4, or 3 for a client of
// socket.io-client 2.x (Options.AllowEIO3). It is fixed at the handshake.
func (s *Session) Protocol() int { return int(s.protocol) }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doneLocked()
}

// doneLocked is Done with s.mu held.
func (s *Session) doneLocked() <-chan struct{} {
	if s.done == nil {
		s.done = make(chan struct{})
		if s.closed {
			close(s.done)
		}
	}
	return s.done
}

// Send queues msgs to be written in order, together. It fails with ErrSessionClosed once the
// session has ended, and with ErrSendQueueFull when the client is too slow, which also ends the
// session.
func (s *Session) Send(msgs ...*Message) error {
	err := s.Enqueue(msgs...)
	if err == ErrSendQueueFull {
		s.closeSlow()
	}
	return err
}

// Enqueue is Send for a caller holding a lock that the session's close would need (the
// handler's OnClose runs on the goroutine that closes): when the queue is full it returns
// ErrSendQueueFull and leaves the session open, and the caller must call CloseSlow once its
// lock is released.
func (s *Session) Enqueue(msgs ...*Message) error {
	s.mu.Lock()
	if err := s.roomLocked(len(msgs)); err != nil {
		s.mu.Unlock()
		return err
	}
	w, rest := s.queueLocked(msgs)
	s.mu.Unlock()
	s.wakeRest(w, rest)
	return nil
}

// roomLocked tells, with s.mu held, whether n more messages may be queued: ErrSessionClosed
// once the session has ended, ErrSendQueueFull when the queue would pass its limit.
func (s *Session) roomLocked(n int) error {
	switch {
	case s.closed:
		return ErrSessionClosed
	case len(s.queue)+n > s.srv.opts.MaxQueuedMessages:
		return ErrSendQueueFull
	}
	return nil
}

// queueLocked is Send's and Enqueue's part under s.mu, the session open and msgs within the
// queue's limit: msgs are written at once when writeNowLocked can, else queued. It returns
// the writer to start, as wakeLocked does, and rest, the end of a frame written in part,
// for which it holds wmu: the writer must write it first (see wakeRest).
func (s *Session) queueLocked(msgs []*Message) (w net.Conn, rest []byte) {
	msgs, rest = s.writeNowLocked(msgs)
	if len(msgs) == 0 && rest == nil {
		return nil, nil
	}
	s.queue = append(s.queue, msgs...)
	return s.wakeLocked(), rest
}

// EnqueueBatched is Enqueue for one of a burst of sends to many sessions (broadcast after
// broadcast): on a WebSocket, the message is never written on the caller's goroutine, and the
// writer it would start is deferred until Server.Flush, or until the queue holds a writev's
// worth of frames, so that each receiver gets what the burst queued for it in one system call
// rather than one per message. The writer starts by itself at the latest maxDeferral (20 ms)
// after the server deferred its first one. As with Enqueue, a full queue leaves the session
// open: the caller calls CloseSlow.
func (s *Session) EnqueueBatched(msgs ...*Message) error {
	s.mu.Lock()
	if err := s.roomLocked(len(msgs)); err != nil {
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, msgs...)
	var w net.Conn
	switch {
	case s.deferred:
		if len(s.queue) >= framesPerWrite {
			s.deferred = false
			w = s.ws
		}
	case s.ws == nil || s.writing:
		// Polling (signal wakes the GET), or a writer that drains the queue runs already.
	case len(s.queue) >= framesPerWrite:
		w = s.wakeLocked()
	default:
		s.writing, s.deferred = true, true
		s.srv.deferred.add(s)
	}
	s.mu.Unlock()
	s.wake(w)
	return nil
}

// CloseSlow ends the session as a full send queue does: reason "transport error",
// ErrSendQueueFull. It is what Send does itself, for callers of Enqueue.
func (s *Session) CloseSlow() { s.closeSlow() }

// SendVolatile queues msgs only if the transport can write them now, and reports whether it
// did: a volatile message is dropped rather than queued behind others or for a poll to come.
func (s *Session) SendVolatile(msgs ...*Message) bool {
	s.mu.Lock()
	writable := !s.closed && !s.upgrading && len(s.queue) == 0 &&
		(s.onWS || s.getActive)
	var (
		w    net.Conn
		rest []byte
	)
	if writable {
		w, rest = s.queueLocked(msgs)
	}
	s.mu.Unlock()
	if writable {
		s.wakeRest(w, rest)
	}
	return writable
}

// Close ends the session from the server side: what is queued is still written, then a close
// packet; the handler's OnClose gets "forced close".
func (s *Session) Close() { s.closeWith(ReasonForcedClose, nil, true) }

// signal wakes the pending GET, if any: the queue has something or the state changed. A GET
// parked on a held connection is answered here (answerParked). A GET parks only under s.mu
// after finding nothing to answer, so a change made under s.mu before signal is called
// either kept it from parking or finds it parked here.
func (s *Session) signal() {
	if s.wakeCh == nil {
		return // opened over WebSocket: never polled
	}
	if s.parked.Load() != nil {
		s.mu.Lock()
		hc := s.takeParkedLocked()
		s.mu.Unlock()
		if hc != nil {
			hc.answerParked(s)
			return
		}
	}
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// wakeLocked tells, with s.mu held after the queue or the state changed, whether a WebSocket
// writer must be started: it returns the connection to start it on, or nil when there is no
// WebSocket, a writer is running already (it drains the queue until it is empty), or the
// session was dropped. An idle WebSocket session so has no writer goroutine at all.
func (s *Session) wakeLocked() net.Conn {
	if s.ws == nil || s.writing || (s.closed && !s.flushOnDone) {
		return nil
	}
	s.writing = true
	return s.ws
}

// wake starts the writer wakeLocked asked for, if any, and wakes the pending GET.
func (s *Session) wake(w net.Conn) { s.wakeRest(w, nil) }

// wakeRest is wake for a writer that must first write rest, the end of a frame that
// writeNowLocked wrote in part, and then release wmu, which it is handed locked.
func (s *Session) wakeRest(w net.Conn, rest []byte) {
	if w != nil {
		s.srv.goroutines.Go(func() { s.writeLoop(w, rest) })
	}
	s.signal()
}

// closeOverLimit ends the session for a limit it broke, as closeWith does, counting the hit
// first: whoever learns of the end (the handler's OnClose) then finds it counted. A payload
// over MaxPayload is logged at info too: the client is refused something it meant to send,
// and its operator may have to raise the limit.
func (s *Session) closeOverLimit(limit, reason string, err error, graceful bool) {
	s.mu.Lock()
	open := !s.closed
	transport := s.transportLocked()
	s.mu.Unlock()
	if open {
		s.srv.onLimit(limit)
		if limit == LimitPayload {
			s.srv.log.Info("engineio: a client sent more than the payload limit at once; its connection is closed",
				"limit", LimitPayload, "max_bytes", s.srv.opts.MaxPayload,
				"sid", s.id, "address", s.handshake.Address, "transport", transport)
		}
	}
	s.closeWith(reason, err, graceful)
}

// closeWith ends the session once, and reports whether this call did. graceful (a
// server-side close) lets the transport flush the queue and a close packet first; otherwise
// the connection is dropped now, and a GET pending on it gets what was queued and a close
// packet.
func (s *Session) closeWith(reason string, err error, graceful bool) bool {
	if graceful {
		return s.end(reason, err, endFlush)
	}
	return s.end(reason, err, endDrop)
}

// closeByClient ends the session on the client's close packet.
func (s *Session) closeByClient() { s.end(ReasonTransportClose, nil, endClient) }

// ending is how a session ends, which decides what its transport writes last.
type ending uint8

const (
	// endDrop: an error or a timeout. The connection is dropped; a pending GET is answered
	// with the queue and a close packet.
	endDrop ending = iota
	// endFlush: a server-side close. The queue and a close packet are written first.
	endFlush
	// endClient: the client's close packet. A pending GET is released with a noop alone, as
	// Node's engine.io does: the client has closed, and is sent no close packet back.
	endClient
)

// end is closeWith and closeByClient: it ends the session once, and reports whether this call
// did. The session's last packets are queued here, under the lock that closes it, so a
// pending GET answers with them and nothing queued later.
func (s *Session) end(reason string, err error, how ending) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	graceful := how == endFlush
	s.flushOnDone = graceful
	if how == endClient {
		clear(s.queue)
		s.queue = append(s.queue[:0], s.srv.noopMsg)
	} else {
		// A pending GET answers with it either way; a WebSocket writer writes it only after
		// a server-side close (flushOnDone).
		s.queue = append(s.queue, s.srv.closeMsg)
	}
	s.srv.beats.remove(s)
	ws, probe := s.ws, s.probe
	w := s.wakeLocked()
	if s.deferred {
		// The end does not wait for the burst: a deferred writer that has a close to flush
		// starts now, and Flush finds it started.
		s.deferred = false
		if graceful {
			w = s.ws
		}
	}
	done := s.done
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
	s.wake(w)
	if ws != nil && !graceful {
		s.closeConn(ws)
	}
	// An upgrade in progress may still carry a graceful close's last packets (its "5" starts
	// the writer, which flushes them); otherwise, and at shutdown, the probe is dropped.
	if probe != nil && (!graceful || reason == ReasonServerShutdown) {
		probe.Close()
	}
	s.srv.remove(s)
	if s.handler != nil {
		s.handler.OnClose(reason, err)
	}
	if err != nil && !errors.Is(err, ErrSessionClosed) {
		s.srv.log.Debug("engineio: session closed", "sid", s.id, "reason", reason, "err", err)
	}
	return true
}

// closeSlow ends a session whose client does not read fast enough.
func (s *Session) closeSlow() {
	s.closeOverLimit(LimitSendQueue, ReasonTransportError, ErrSendQueueFull, false)
}

func (s *Session) startHeartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := time.Now()
	if s.protocol == 3 {
		s.lastRecv.Store(now.UnixNano())
		s.srv.beats.schedule(s, now.Add(s.v3Timeout()))
		return
	}
	s.srv.beats.schedule(s, now.Add(s.srv.opts.PingInterval))
}

// v3Timeout is how long a v3 session lives without a packet from its client, whose pings
// come every PingInterval: PingInterval and PingTimeout.
func (s *Session) v3Timeout() time.Duration {
	return s.srv.opts.PingInterval + s.srv.opts.PingTimeout
}

// heartbeat runs when the session's heartbeat is due (see heartbeats): it sends a ping, and ends the session when the pong
// for the previous one has not come.
func (s *Session) heartbeat() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.protocol == 3 {
		// The server never pings a v3 client: its deadline is v3Timeout after its last packet.
		due := time.Unix(0, s.lastRecv.Load()).Add(s.v3Timeout())
		if time.Now().Before(due) {
			s.srv.beats.schedule(s, due)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.closeWith(ReasonPingTimeout, nil, false)
		return
	}
	if s.awaitPong {
		s.mu.Unlock()
		s.closeWith(ReasonPingTimeout, nil, false)
		return
	}
	s.awaitPong = true
	s.srv.beats.schedule(s, time.Now().Add(s.srv.opts.PingTimeout))
	full := len(s.queue) >= s.srv.opts.MaxQueuedMessages
	var w net.Conn
	if !full {
		s.queue = append(s.queue, s.srv.pingMsg)
		w = s.wakeLocked()
	}
	s.mu.Unlock()
	if full {
		s.closeSlow()
		return
	}
	s.wake(w)
}

func (s *Session) onPong() {
	s.mu.Lock()
	if s.awaitPong && !s.closed {
		s.awaitPong = false
		s.srv.beats.schedule(s, time.Now().Add(s.srv.opts.PingInterval))
	}
	s.mu.Unlock()
}

// deliver gives a message to the handler, unless the session has ended (then it returns
// false). The lock is released by a defer: a handler that panics leaves it free for the
// session's end.
func (s *Session) deliver(p packet) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.handler.OnMessage(p.data, p.binary)
	}
	return !closed
}

// onPacket handles one inbound packet on the reader's goroutine. It returns false when the
// session has ended and reading should stop.
func (s *Session) onPacket(p packet) bool {
	if s.protocol == 3 {
		return s.onPacketV3(p)
	}
	switch p.typ {
	case packetMessage:
		return s.deliver(p)
	case packetPong:
		s.onPong()
		return true
	case packetNoop:
		return true
	case packetClose:
		s.closeByClient()
		return false
	case packetPing:
		s.closeWith(ReasonTransportError, ErrHeartbeatDirection, false)
		return false
	default:
		s.closeWith(ReasonParseError, fmt.Errorf("%w: %s", ErrUnexpectedPacket, p.typ), false)
		return false
	}
}

// onPacketV3 is onPacket for a v3 session, whose heartbeat is reversed: the client pings,
// and is answered a pong with the ping's data at once; a pong from it is an error.
func (s *Session) onPacketV3(p packet) bool {
	s.lastRecv.Store(time.Now().UnixNano())
	switch p.typ {
	case packetPing:
		pong := s.srv.pongMsg
		if len(p.data) > 0 {
			pong = newPacket(packetPong, p.data)
		}
		err := s.Send(pong)
		return err == nil
	case packetPong:
		s.closeWith(ReasonTransportError, ErrHeartbeatDirection, false)
		return false
	case packetMessage:
		return s.deliver(p)
	case packetNoop:
		return true
	case packetClose:
		s.closeByClient()
		return false
	default:
		s.closeWith(ReasonParseError, fmt.Errorf("%w: %s", ErrUnexpectedPacket, p.typ), false)
		return false
	}
}

// takeQueue hands the queued messages to the caller, who must hold s.mu.
func (s *Session) takeQueueLocked() []*Message {
	q := s.queue
	s.queue = s.spare[:0]
	s.spare = nil
	return q
}

// recycle returns a drained queue's array for reuse, its pointers cleared for the collector.
func (s *Session) recycle(q []*Message) {
	clear(q)
	s.mu.Lock()
	if s.spare == nil && cap(q) <= 1024 {
		s.spare = q[:0]
	}
	s.mu.Unlock()
}
