package heldhttp

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ResponseWriter is the http.ResponseWriter of a request served on a held connection: it keeps
// the response, for the caller to write once the handler returns (AppendResponse). The zero
// value is ready; Reset readies it for the next request.
type ResponseWriter struct {
	header http.Header
	status int
	body   []byte
}

// Header returns the response's header, to be set before Write or WriteHeader.
func (w *ResponseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// WriteHeader sets the status, once.
func (w *ResponseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// Write adds p to the body; the status is 200 unless set before.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// AppendResponse appends the response, its head (AppendHead) and its body; a handler that
// wrote nothing answers 200.
func (w *ResponseWriter) AppendResponse(b []byte) []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b = AppendHead(b, status, w.header, "", len(w.body))
	return append(b, w.body...)
}

// Reset empties the response for the next request. A body above 64 KiB is let go rather than
// kept for it.
func (w *ResponseWriter) Reset() {
	clear(w.header)
	w.status = 0
	if cap(w.body) > 64<<10 {
		w.body = nil
	} else {
		w.body = w.body[:0]
	}
}

// AppendHead appends a response's status line and header, with its Content-Length (length)
// and a Date, keeping the connection open: the header's own Content-Length, Connection,
// Transfer-Encoding and Date are left out. contentType, when set, comes first, with
// Cache-Control: no-store (a poll's answer).
func AppendHead(b []byte, status int, header http.Header, contentType string, length int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	if contentType != "" {
		b = append(b, "Content-Type: "...)
		b = append(b, contentType...)
		b = append(b, "\r\nCache-Control: no-store\r\n"...)
	}
	for k, vs := range header {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" || k == "Date" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendHeaderValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Date: "...)
	b = append(b, httpDate()...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(length), 10)
	return append(b, "\r\n\r\n"...)
}

// appendHeaderValue appends v with line breaks replaced, as net/http writes header values.
func appendHeaderValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\r\n") {
		return append(b, v...)
	}
	return append(b, strings.NewReplacer("\r", " ", "\n", " ").Replace(v)...)
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]
