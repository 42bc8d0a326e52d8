package engineio

import (
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/siobridge/siobridge/engineio/internal/heldhttp"
)

// This file holds long-polling connections without a goroutine each (Options.PollingHandoff,
// Linux with the epoller): the held connections. A GET that finds nothing to answer takes its
// connection from net/http (Hijack) instead of waiting in its handler: the session keeps it
// as parked, the epoller watches it for the client going away, and whoever queues the next
// message writes the response (a goroutine finishes it only if the socket does not take it at
// once). The connection then stays with the epoller: its next requests, when they are polling
// requests of this server (a GET or POST of PollingPath with a sid), are read by the
// epoller's readers, parsed by heldhttp's Reader and answered by serveRequest, as ServeHTTP
// answers net/http's, through heldhttp's ResponseWriter; anything else (a handshake, a
// WebSocket, a page for the reverse proxy, a chunked body) goes back to net/http through
// PollingHandoff with the bytes read so far. Where a held connection is in its cycle of
// requests is its heldState (heldstate.go).
//
// A parked poll so costs a registration and a few hundred bytes instead of net/http's handler
// goroutine, its background reader and their buffers, and a delivery costs one read and one
// write system call and no scheduling of the request's goroutines.

// heldConn is one long-polling connection taken from net/http: a held connection.
type heldConn struct {
	srv    *Server
	nc     net.Conn
	remote string
	pc     *epollConn // its registration with the epoller

	mu sync.Mutex
	// in holds what was read and not yet served: the start of the next request, or a request
	// that came while another was served or parked.
	in heldhttp.Reader
	// state is where hc is in its cycle of requests (heldState.next has every transition).
	state heldState
	// parked is the session whose GET is parked on hc, in heldParking and heldParked.
	parked *Session
	// since is when the connection last became idle (nothing to serve, nothing parked), or
	// began a request it has not finished; lastRead is when bytes last came. Swept against
	// the timeouts: idle, the header's, the body's.
	since, lastRead time.Time

	w heldhttp.ResponseWriter // the writer of the request being served (one at a time)
	// header is what a parked poll's answer carries besides its own (CORS), saved at parking.
	header http.Header
}

// holdsPolls reports whether polls may take their connections from net/http.
func (s *Server) holdsPolls() bool {
	return s.opts.PollingHandoff != nil && s.epoll != nil
}

// hijackPoll takes the connection of a GET that is about to wait, or returns nil, and the
// GET then waits in its handler as without PollingHandoff: an HTTP/1.0 or closing request, a
// TLS connection, or a writer that cannot hijack. A connection the epoller cannot read (a
// wrapper around the socket) is taken all the same; holdPoll gives it back once answered.
func (s *Server) hijackPoll(w http.ResponseWriter, r *http.Request) *heldConn {
	if !r.ProtoAtLeast(1, 1) || r.Close || r.TLS != nil {
		return nil
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	// This GET is being served: what follows it waits.
	hc := &heldConn{srv: s, nc: nc, remote: r.RemoteAddr, since: time.Now(), state: heldServing}
	if n := brw.Reader.Buffered(); n > 0 {
		// A request that came behind this one: served once this one is answered.
		b, _ := brw.Reader.Peek(n)
		hc.in.Append(b)
	}
	switch p := nc.(type) {
	case *heldhttp.PrefixConn:
		// Held before and handed back: the socket itself is held again, after what net/http
		// had not read yet of what was handed back with it.
		hc.in.Append(p.Prefix)
		hc.nc = p.Conn
	case PassThroughConn:
		hc.in.Append(p.TakeUnread())
	}
	hc.header = w.Header().Clone()
	_ = nc.SetDeadline(time.Time{})
	return hc
}

// register hands hc to the epoller and the server's set of held connections; false when it
// cannot be: the server is closing (the caller answers the GET and closes hc), or the epoller
// cannot read it (hc is closed).
func (hc *heldConn) register() bool {
	s := hc.srv
	s.held.mu.Lock()
	if s.held.closed {
		s.held.mu.Unlock()
		return false // the caller answers and closes
	}
	s.held.conns[hc] = struct{}{}
	if !s.held.sweeping {
		s.held.sweeping = true
		s.goroutines.Go(s.sweepHeld)
	}
	s.held.mu.Unlock()
	pc, err := s.epoll.addHeld(hc, hc.nc)
	if err != nil {
		hc.close()
		return false
	}
	hc.mu.Lock()
	hc.pc = pc
	closed := hc.state == heldClosed
	hc.mu.Unlock()
	if closed {
		s.epoll.remove(pc)
	}
	return !closed
}

// parkLocked makes hc the holder of sess's pending GET; sess.mu is held and the GET has
// nothing to answer. The answer comes from answerParked, started by the session's signal. It
// returns false when hc is closed already: the GET ends with its connection.
func (hc *heldConn) parkLocked(sess *Session) bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if !hc.on(evPark) {
		return false
	}
	hc.parked = sess
	sess.parked.Store(hc)
	return true
}

// holdPoll goes on with a GET whose connection hijackPoll took: it parks it, or answers it if
// something came meanwhile, and leaves the connection with the epoller either way.
func (s *Session) holdPoll(hc *heldConn) {
	if !epollable(hc.nc) {
		s.answerAndHandOff(hc)
		return
	}
	if !hc.register() {
		// The server is closing, or the epoller cannot take the connection: the GET is
		// answered here if the session has an answer (Close has closed it: its close
		// packet), and the connection closed.
		s.mu.Lock()
		var batch []*Message
		if s.pollReadyLocked() {
			batch = s.takePollLocked()
		} else {
			s.getActive = false
		}
		s.mu.Unlock()
		if batch != nil {
			_ = hc.writePoll(s, batch) // not the epoller's: a write bounded by WriteTimeout
		}
		hc.nc.Close()
		return
	}
	s.mu.Lock()
	if !s.pollReadyLocked() {
		parked := hc.parkLocked(s)
		if !parked {
			s.getActive = false
		}
		s.mu.Unlock()
		if parked && !hc.parkedServed() {
			return
		}
		hc.serve()
		return
	}
	batch := s.takePollLocked()
	s.mu.Unlock()
	if err := hc.writePoll(s, batch); err != nil {
		s.closeWith(ReasonTransportError, err, false)
		hc.close()
		return
	}
	hc.serve()
}

// answerAndHandOff serves a GET whose connection the epoller cannot read (a wrapper around
// the socket): it waits for the answer on this goroutine, as without PollingHandoff, writes
// it, and gives the connection back to net/http.
func (s *Session) answerAndHandOff(hc *heldConn) {
	s.mu.Lock()
	s.waitPollLocked(nil) // no context: a ping answers it within PingInterval
	batch := s.takePollLocked()
	s.mu.Unlock()
	if err := hc.writePoll(s, batch); err != nil {
		s.closeWith(ReasonTransportError, err, false)
		hc.nc.Close()
		return
	}
	hc.handOff()
}

// parkedServed is called by the goroutine serving hc once the GET it served is parked: it
// stops serving (heldParked), unless the GET was answered meanwhile (heldResuming: it goes
// on, and returns true).
func (hc *heldConn) parkedServed() bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return hc.on(evParked) && hc.state == heldServing
}

// takeParkedLocked returns the held connection of the session's pending GET, and takes it
// off the session, when the GET has something to answer now; sess.mu is held.
func (s *Session) takeParkedLocked() *heldConn {
	hc := s.parked.Load()
	if hc == nil || !s.pollReadyLocked() {
		return nil
	}
	s.parked.Store(nil)
	return hc
}

// pollReadyLocked reports whether a pending GET answers now: something is queued, the session
// ended, or the client is moving to WebSocket (its poll is released with a noop).
func (s *Session) pollReadyLocked() bool {
	return len(s.queue) > 0 || s.closed || s.upgrading || s.onWS
}

// takePollLocked takes what the pending GET answers with, pollReadyLocked being true, and
// ends the GET: from here the client may poll again (it does once it has the answer, maybe on
// another connection), as net/http's handler ends before its buffered answer is flushed.
func (s *Session) takePollLocked() []*Message {
	s.getActive = false
	return s.pollBatchLocked()
}

// pollBatchLocked takes what a pending GET answers with; pollReadyLocked was true. A closed
// session's last packet is in its queue already (Session.end).
func (s *Session) pollBatchLocked() []*Message {
	if len(s.queue) > 0 || s.closed {
		return s.takeQueueLocked()
	}
	return append(s.takeQueueLocked(), s.srv.noopMsg)
}

// answerParked writes the answer of sess's GET parked on hc; the session's signal calls it.
// The answer is written at once when the socket takes all of it without waiting, as it does
// when the client waits for it (it has read the previous answer before asking again), so a
// delivery costs no goroutine; otherwise a goroutine waits for the socket to take the rest.
// Then what the client sent meanwhile, if anything, is served.
func (hc *heldConn) answerParked(sess *Session) {
	sess.mu.Lock()
	batch := sess.takePollLocked()
	sess.mu.Unlock()
	bp := respBufs.Get().(*[]byte)
	b := hc.appendPoll((*bp)[:0], sess, batch)
	n, err := hc.pc.writeNow(b)
	if err == nil && n == len(b) {
		putRespBuf(bp, b)
		if hc.answered() {
			sess.srv.goroutines.Go(func() { hc.serve() })
		}
		return
	}
	sess.srv.goroutines.Go(func() {
		if err == nil {
			err = hc.writeRest(b[n:])
		}
		putRespBuf(bp, b)
		if err != nil {
			sess.closeWith(ReasonTransportError, err, false)
			hc.close()
			return
		}
		if hc.answered() {
			hc.serve()
		}
	})
}

// answered is called once a parked GET's answer is written: it reports whether the caller is
// to serve what the client sent meanwhile (hc is then heldServing). If the goroutine that
// parked the GET has not stopped yet, it serves what is next (heldResuming); if nothing came,
// the epoller's reader serves the next request when it comes.
func (hc *heldConn) answered() bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.parked = nil
	hc.since = time.Now()
	return hc.on(evAnswer) && hc.in.Len() > 0 && hc.on(evStart)
}

// unparkLocked forgets sess's GET parked on hc, the client having gone; sess.mu is held.
func (sess *Session) unparkLocked(hc *heldConn) {
	if sess.parked.Load() == hc {
		sess.parked.Store(nil)
		sess.getActive = false
	}
}

// consume takes bytes the epoller read, and serves them when nothing else is: it returns
// false when the connection is no longer the epoller's (closed or handed off).
func (hc *heldConn) consume(data []byte) bool {
	hc.mu.Lock()
	if hc.state == heldClosed {
		hc.mu.Unlock()
		return false
	}
	// What a request may be: a header and its body. Behind a parked GET a client sends
	// nothing (it waits for the answer; socket.io-client never pipelines), so what it may send
	// there is one header's worth: a parked poll holds no more than that of the client's bytes.
	// A request being served may have been answered already, while its goroutine finishes:
	// the client's next request is as welcome then as after.
	limit := hc.srv.opts.MaxHeaderBytes + int(hc.srv.opts.MaxPayload)
	if hc.state == heldParking || hc.state == heldParked {
		limit = hc.srv.opts.MaxHeaderBytes
	}
	if hc.in.Len()+len(data) > limit {
		hc.mu.Unlock()
		hc.close()
		return false
	}
	now := time.Now()
	if hc.in.Len() == 0 {
		hc.since = now
	}
	hc.lastRead = now
	hc.in.Append(data)
	if !hc.on(evStart) {
		hc.mu.Unlock()
		return true // served by whoever serves hc, or once its parked GET is answered
	}
	hc.mu.Unlock()
	return hc.serve()
}

// readFailed: the client closed the connection, or it broke.
func (hc *heldConn) readFailed(error) { hc.close() }

// serve serves the requests in hc.in, one after the other, until one is incomplete, parks, or
// is not a poll (handed off). hc is heldServing; serve leaves it heldIdle, heldParked or
// heldClosed (handed off). It returns false when hc is no longer the epoller's. A panic on the
// way closes hc (and is logged with its stack): it ends this connection, not the process.
func (hc *heldConn) serve() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			hc.srv.log.Error("engineio: panic serving a held connection; closing it",
				"panic", v, "remote", hc.remote, "stack", string(debug.Stack()))
			hc.close()
			ok = false
		}
	}()
	for {
		req, status, open := hc.next()
		switch {
		case !open:
			return false
		case status == heldhttp.Incomplete:
			return true
		case status == heldhttp.Foreign:
			hc.handOff()
			return false
		}

		w := &hc.w
		w.Reset()
		hc.srv.serveRequest(w, req, hc)

		switch hc.served() {
		case heldClosed:
			return false
		case heldParking:
			return true // its GET is parked: the answer serves what comes next
		case heldResuming:
			continue // its GET parked and was answered meanwhile: go on with the next request
		}
		if err := hc.writeResponse(w); err != nil {
			hc.close()
			return false
		}
		w.Reset() // a large body goes now, not at the next request
	}
}

// next takes the request at the start of hc.in when it is complete; open is false when hc is
// closed. Unless it is Ready, the connection is no longer being served (Incomplete, or
// closed) or is to be handed off (Foreign).
func (hc *heldConn) next() (req *http.Request, status heldhttp.Status, open bool) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.state == heldClosed {
		return nil, 0, false
	}
	req, status = hc.in.Next(hc.srv.held.limits)
	switch status {
	case heldhttp.Ready:
		req.RemoteAddr = hc.remote
	case heldhttp.Incomplete:
		hc.on(evWait)
	}
	return req, status, true
}

// served drops the request just served from hc.in, and returns hc's state as the request's
// handler left it: heldServing (its response is to be written), heldParking (its GET is
// parked: hc is now heldParked, and the goroutine stops serving), heldResuming (its GET
// parked and was answered meanwhile: hc is heldServing again, and the goroutine goes on with
// nothing to write) or heldClosed (the client sent more than it may behind this request, or a
// parked GET's answer failed: the buffer is gone with it).
func (hc *heldConn) served() heldState {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	was := hc.state
	if was == heldClosed {
		return was
	}
	hc.in.Served()
	hc.since = time.Now()
	if was == heldParking || was == heldResuming {
		hc.on(evParked)
	}
	return was
}

// handOff gives the connection back to net/http, with what was read of it.
func (hc *heldConn) handOff() {
	prefix, _, ok := hc.detach()
	if !ok {
		return
	}
	hc.srv.held.forget(hc)
	if pc, ok := hc.nc.(PassThroughConn); ok {
		pc.Unread(prefix)
		hc.srv.opts.PollingHandoff(pc)
		return
	}
	hc.srv.opts.PollingHandoff(&heldhttp.PrefixConn{Conn: hc.nc, Prefix: prefix})
}

// close closes the connection and releases a GET parked on it; then the connection leaves the
// server's set (so a connection no longer held has no GET parked on it).
func (hc *heldConn) close() {
	_, sess, ok := hc.detach()
	if !ok {
		return
	}
	if sess != nil {
		sess.mu.Lock()
		sess.unparkLocked(hc)
		sess.mu.Unlock()
	}
	hc.nc.Close()
	hc.srv.held.forget(hc)
}

// detach marks hc closed and takes it off the epoller, once: it returns what was read and not
// served, the session whose GET is parked on it, and false when it was closed or handed off
// already. The caller then takes it out of the server's set.
func (hc *heldConn) detach() ([]byte, *Session, bool) {
	hc.mu.Lock()
	if !hc.on(evClose) {
		hc.mu.Unlock()
		return nil, nil, false
	}
	buf, sess, pc := hc.in.Take(), hc.parked, hc.pc
	hc.parked = nil
	hc.mu.Unlock()
	if pc != nil {
		hc.srv.epoll.remove(pc)
	}
	return buf, sess, true
}

const pollContentType = "text/plain; charset=UTF-8"

// writeResponse writes the response w kept, keeping the connection open.
func (hc *heldConn) writeResponse(w *heldhttp.ResponseWriter) error {
	bp := respBufs.Get().(*[]byte)
	b := w.AppendResponse((*bp)[:0])
	err := hc.write(b)
	putRespBuf(bp, b)
	return err
}

// writePoll writes the answer of a poll: the batch's packets.
func (hc *heldConn) writePoll(sess *Session, batch []*Message) error {
	bp := respBufs.Get().(*[]byte)
	b := hc.appendPoll((*bp)[:0], sess, batch)
	err := hc.write(b)
	putRespBuf(bp, b)
	return err
}

// appendPoll appends the answer of a poll, the batch's packets as its body, and recycles the
// batch.
func (hc *heldConn) appendPoll(b []byte, sess *Session, batch []*Message) []byte {
	b = heldhttp.AppendHead(b, http.StatusOK, hc.header, pollContentType, payloadsLen(batch))
	b = appendPayloads(b, batch)
	sess.recycle(batch)
	return b
}

// write writes b: at once when the socket takes it all, else waiting for it up to
// WriteTimeout. The deadline is cleared afterwards: writeNow fails on an expired one.
func (hc *heldConn) write(b []byte) error {
	if hc.pc == nil {
		return hc.writeRest(b) // not the epoller's (answerAndHandOff)
	}
	n, err := hc.pc.writeNow(b)
	if err != nil || n == len(b) {
		return err
	}
	return hc.writeRest(b[n:])
}

// writeRest writes what writeNow left of an answer, waiting for the socket.
func (hc *heldConn) writeRest(b []byte) error {
	_ = hc.nc.SetWriteDeadline(time.Now().Add(hc.srv.opts.WriteTimeout))
	_, err := hc.nc.Write(b)
	_ = hc.nc.SetWriteDeadline(time.Time{})
	return err
}

func putRespBuf(bp *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*bp = b
		respBufs.Put(bp)
	}
}

var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// heldSet is the server's set of connections taken from net/http, for the sweep and Close.
type heldSet struct {
	// sweepEvery is the sweep's period (sweepPeriod).
	sweepEvery time.Duration
	// limits are what a held connection's Reader serves (Options.PollingPath,
	// MaxHeaderBytes, MaxPayload).
	limits heldhttp.Limits

	mu       sync.Mutex
	conns    map[*heldConn]struct{}
	closed   bool
	sweeping bool
	stop     chan struct{}
}

func (h *heldSet) forget(hc *heldConn) {
	h.mu.Lock()
	delete(h.conns, hc)
	h.mu.Unlock()
}

const (
	// minSweepEvery and maxSweepEvery bound the period of the sweep of held connections.
	minSweepEvery = 10 * time.Millisecond
	maxSweepEvery = 5 * time.Second
)

// sweepPeriod is how often the held connections are swept: half the shortest of the header
// and body timeouts, from 10 ms to 5 s. A connection is so closed at most that much after its
// timeout.
func sweepPeriod(o *Options) time.Duration {
	return max(minSweepEvery, min(maxSweepEvery, o.PollingHeaderTimeout/2, o.PollingBodyTimeout/2))
}

// sweepHeld closes held connections past their timeouts (Options.PollingIdleTimeout,
// PollingHeaderTimeout, PollingBodyTimeout), every sweepEvery, until Close: one goroutine for
// all of them, as the heartbeats are. An idle connection is timed from when it became idle, a
// header from its first byte, a body from its last byte.
func (s *Server) sweepHeld() {
	t := time.NewTicker(s.held.sweepEvery)
	defer t.Stop()
	var stale []*heldConn
	for {
		select {
		case <-s.held.stop:
			return
		case now := <-t.C:
			stale = stale[:0]
			s.held.mu.Lock()
			for hc := range s.held.conns {
				hc.mu.Lock()
				if hc.state == heldIdle && hc.stale(now, &s.opts) {
					stale = append(stale, hc)
				}
				hc.mu.Unlock()
			}
			s.held.mu.Unlock()
			for _, hc := range stale {
				hc.close()
			}
			clear(stale)
		}
	}
}

// stale reports whether hc, heldIdle, is past its timeout in o; hc.mu is held.
func (hc *heldConn) stale(now time.Time, o *Options) bool {
	switch {
	case hc.in.Len() == 0:
		return now.Sub(hc.since) > o.PollingIdleTimeout
	case !hc.in.InBody():
		return now.Sub(hc.since) > o.PollingHeaderTimeout
	default:
		return now.Sub(hc.lastRead) > o.PollingBodyTimeout
	}
}

// stopSweep refuses connections from now on and stops the sweep (Close).
func (h *heldSet) stopSweep() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
	h.mu.Unlock()
}

// closeHeld closes every held connection (Close, once the sessions are closed and their last
// answers written).
func (s *Server) closeHeld() {
	s.held.mu.Lock()
	all := make([]*heldConn, 0, len(s.held.conns))
	for hc := range s.held.conns {
		all = append(all, hc)
	}
	s.held.mu.Unlock()
	for _, hc := range all {
		hc.close()
	}
}
