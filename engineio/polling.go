package engineio

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// pollForm is what a polling request's query asks of its payloads' form, besides the
// session's protocol.
type pollForm struct {
	// jsonp is the JSONP callback index (the j parameter, digits), "" when not JSONP.
	jsonp string
	// b64 asks for binary inline in base64 (the b64 parameter), in v3, rather than as an
	// XHR2 binary payload. JSONP is always so.
	b64 bool
}

// plain reports whether the request is served as v4's polls are: no JSONP, a v4 session.
func (pf pollForm) plain(s *Session) bool { return pf.jsonp == "" && s.protocol == 4 }

// servePoll answers a long-polling GET: it waits until something is queued (a ping at the
// latest) and writes all of it as one payload. A GET read on a held connection (hc) parks
// there instead of waiting; one from net/http may take its connection to hold it (a v4
// session's, not JSONP: a held connection answers in v4's form only).
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request, hc *heldConn, pf pollForm) {
	s.mu.Lock()
	if s.onWS {
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
	if s.closed && len(s.queue) == 0 {
		s.mu.Unlock()
		writeError(w, codeUnknownSID, "")
		return
	}
	// A session closed with packets still queued (by a SessionOpener, before its handshake's
	// answer) answers with them, its close packet last.
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
		if s.srv.holdsPolls() && pf.plain(s) {
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
	contentType := pollContentTypeValue
	var body []byte
	if pf.plain(s) {
		body = appendPayloads(make([]byte, 0, payloadsLen(batch)), batch)
	} else {
		body, contentType = s.legacyPoll(batch, pf)
	}
	s.recycle(batch)

	if hc == nil {
		// A held connection's answer is written without waiting, or with WriteTimeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
	}
	h := w.Header()
	h["Content-Type"] = contentType
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
	done := s.doneLocked()
	for !s.pollReadyLocked() {
		s.mu.Unlock()
		select {
		case <-s.wakeCh:
		case <-done:
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

// legacyPoll is the body of a poll of a v3 session or over JSONP, and its content type: a v3
// batch is a text payload, or an XHR2 binary one when it holds binary and the client did not
// ask for base64; JSONP wraps the payload in its script.
func (s *Session) legacyPoll(batch []*Message, pf pollForm) ([]byte, []string) {
	var payload []byte
	switch {
	case s.protocol == 4:
		payload = appendPayloads(make([]byte, 0, payloadsLen(batch)), batch)
	case pf.jsonp == "" && !pf.b64 && hasBinary(batch):
		return appendBinaryPayloadV3(make([]byte, 0, legacyPayloadCap(batch)), batch), octetStreamValue
	default:
		payload = appendPayloadV3(make([]byte, 0, legacyPayloadCap(batch)), batch)
	}
	if pf.jsonp == "" {
		return payload, pollContentTypeValue
	}
	return appendJSONP(make([]byte, 0, len(pf.jsonp)+len(payload)+len(payload)/8+16), pf.jsonp, payload), pollContentTypeValue
}

// decodePost decodes a POST's body as the session's protocol and the request's form have it.
func (s *Session) decodePost(r *http.Request, body []byte, pf pollForm) ([]packet, error) {
	if pf.jsonp != "" {
		var err error
		if body, err = decodeJSONPForm(body); err != nil {
			return nil, err
		}
	} else if s.protocol == 3 && isOctetStream(r.Header.Get("Content-Type")) {
		return decodeBinaryPayloadV3(body)
	}
	if s.protocol == 3 {
		return decodePayloadV3(body)
	}
	return decodePayload(body)
}

// isOctetStream reports whether a Content-Type is application/octet-stream, parameters aside.
func isOctetStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/octet-stream")
}

// servePost reads a long-polling POST: the whole body is decoded before any of its packets is
// delivered, so a body that is too large or malformed delivers nothing.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request, pf pollForm) {
	s.mu.Lock()
	if s.onWS && !s.upgrading {
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
	var packets []packet
	if pf.plain(s) {
		packets, err = decodePayload(body)
	} else {
		packets, err = s.decodePost(r, body, pf)
	}
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
	octetStreamValue     = []string{"application/octet-stream"}
)
