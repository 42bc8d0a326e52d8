package engineio

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// servePoll answers a long-polling GET: it waits until something is queued (a ping at the
// latest) and writes all of it as one payload. A GET read on a held connection (hc) parks
// there instead of waiting; one from net/http may take its connection to hold it.
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request, hc *heldConn) {
	s.mu.Lock()
	if s.transport != TransportPolling {
		s.mu.Unlock()
		writeError(w, codeBadRequest, "")
		return
	}
	if s.getActive {
		s.mu.Unlock()
		s.closeWith(ReasonTransportError, ErrRequestOverlap, false)
		writeError(w, codeBadRequest, "")
		return
	}
	if s.closed {
		s.mu.Unlock()
		writeError(w, codeUnknownSID, "")
		return
	}
	s.getActive = true
	if !s.pollReadyLocked() {
		if hc != nil {
			// On a held connection: park, without a goroutine (see heldConn).
			hc.header = nil
			if h := w.Header(); len(h) > 0 { // CORS
				hc.header = h.Clone()
			}
			if !hc.parkLocked(s) {
				s.getActive = false
			}
			s.mu.Unlock()
			return
		}
		if s.srv.holdsPolls() {
			s.mu.Unlock()
			if taken := s.srv.hijackPoll(w, r); taken != nil {
				s.holdPoll(taken)
				return
			}
			s.mu.Lock()
		}
	}
	if !s.waitPollLocked(r.Context().Done()) {
		s.getActive = false // the client went away
		s.mu.Unlock()
		return
	}
	batch := s.pollBatchLocked()
	s.mu.Unlock()
	body := appendPayloads(make([]byte, 0, payloadsLen(batch)), batch)
	s.recycle(batch)

	if hc == nil {
		// A held connection's answer is written without waiting, or with WriteTimeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
	}
	h := w.Header()
	h["Content-Type"] = pollContentTypeValue
	h["Cache-Control"] = noStoreValue
	_, err := w.Write(body)

	s.mu.Lock()
	s.getActive = false
	s.mu.Unlock()
	if err != nil {
		s.closeWith(ReasonTransportError, err, false)
	}
}

// waitPollLocked waits, with s.mu held (and released while waiting), until the pending GET
// has something to answer (pollReadyLocked), or gone is closed: then it returns false.
func (s *Session) waitPollLocked(gone <-chan struct{}) bool {
	for !s.pollReadyLocked() {
		s.mu.Unlock()
		select {
		case <-s.wakeCh:
		case <-s.done:
		case <-gone:
			s.mu.Lock()
			return false
		}
		s.mu.Lock()
	}
	return true
}

// payloadsLen is the length of a poll's body of batch: its packets, separated.
func payloadsLen(batch []*Message) int {
	n := max(len(batch)-1, 0)
	for _, m := range batch {
		n += m.payloadLen()
	}
	return n
}

// appendPayloads appends a poll's body of batch.
func appendPayloads(b []byte, batch []*Message) []byte {
	for i, m := range batch {
		if i > 0 {
			b = append(b, recordSeparator)
		}
		b = m.appendPayload(b)
	}
	return b
}

// servePost reads a long-polling POST: the whole body is decoded before any of its packets is
// delivered, so a body that is too large or malformed delivers nothing.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.transport != TransportPolling && !s.upgrading {
		s.mu.Unlock()
		writeError(w, codeBadRequest, "")
		return
	}
	if s.postActive {
		s.mu.Unlock()
		s.closeWith(ReasonTransportError, ErrRequestOverlap, false)
		writeError(w, codeBadRequest, "")
		return
	}
	s.postActive = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.postActive = false
		s.mu.Unlock()
	}()

	// A body announced larger than the limit is refused before any of it is read.
	var body []byte
	err := error(&http.MaxBytesError{Limit: s.srv.opts.MaxPayload})
	if r.ContentLength <= s.srv.opts.MaxPayload {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.srv.opts.MaxPayload))
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.closeOverLimit(LimitPayload, ReasonTransportError, ErrPayloadTooLarge, false)
			writeError(w, errorCodePayloadTooLarge, "Payload too large")
			return
		}
		s.closeWith(ReasonTransportError, err, false)
		writeError(w, codeBadRequest, "")
		return
	}
	packets, err := decodePayload(body)
	if err != nil {
		s.closeWith(ReasonParseError, err, false)
		writeError(w, codeBadRequest, "")
		return
	}
	for _, p := range packets {
		if !s.onPacket(p) {
			break
		}
	}
	w.Header()["Content-Type"] = textHTMLValue
	_, _ = io.WriteString(w, "ok")
}

// Header values set on every poll and post, shared: neither net/http nor heldhttp changes
// a value slice it is given.
var (
	pollContentTypeValue = []string{pollContentType}
	noStoreValue         = []string{"no-store"}
	textHTMLValue        = []string{"text/html"}
)
