package heldhttp

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// MaxHeaderBytes is the largest request header a Reader is given to read (Limits.MaxHeader).
// A larger one goes to net/http, which reads it by its own rules and limits (a browser's poll,
// cookies included, is far smaller).
const MaxHeaderBytes = 8 << 10

// Limits are what a Reader serves itself; a request beyond them is Foreign.
type Limits struct {
	// Path is the exact path of the polling requests served, such as "/socket.io/".
	Path string
	// MaxHeader bounds a request's header, request line included, in bytes: at most
	// MaxHeaderBytes.
	MaxHeader int
	// MaxBody bounds a request's Content-Length, in bytes.
	MaxBody int64
}

// Status is what a Reader found at the start of its buffer.
type Status int

const (
	// Ready: a complete polling request.
	Ready Status = iota
	// Incomplete: the start of one; more bytes are needed.
	Incomplete
	// Foreign: not a polling request of this path, or one the Reader leaves to net/http;
	// everything from its first byte is net/http's to read.
	Foreign
)

// Reader holds the bytes read of a held connection and not yet served, and reads the request
// at their start. It looks at each byte once, however the client splits its request: it
// resumes its search for the header's end where the last one stopped, and keeps the parsed
// header while the body comes. The zero value is empty and ready.
type Reader struct {
	buf []byte
	// The request at the start of buf, while it is incomplete: scanned is how much of buf was
	// searched for the end of its header; once found, head is the header, parsed, and bodyAt
	// where its body begins.
	scanned int
	head    *http.Request
	bodyAt  int
	// served is the length of the request Next returned, dropped from buf by Served.
	served int
}

// Append adds bytes read of the connection.
func (r *Reader) Append(p []byte) { r.buf = append(r.buf, p...) }

// Len is how many bytes are held.
func (r *Reader) Len() int { return len(r.buf) }

// InBody reports whether the request at the start has its header and waits for its body.
func (r *Reader) InBody() bool { return r.head != nil }

// Take returns every byte held and empties r: what net/http is to read, when the connection
// goes back to it.
func (r *Reader) Take() []byte {
	b := r.buf
	*r = Reader{}
	return b
}

// Next returns the request at the start of the buffer when it is a complete polling request
// within l (Ready), its body read; Served then drops it. Otherwise it returns Incomplete or
// Foreign and no request. The request's RemoteAddr is left for the caller to set.
func (r *Reader) Next(l Limits) (*http.Request, Status) {
	if r.head == nil {
		end := headerEnd(r.buf, r.scanned)
		if end == -2 {
			return nil, Foreign
		}
		if end < 0 {
			r.scanned = len(r.buf)
			if len(r.buf) > l.MaxHeader {
				return nil, Foreign
			}
			return nil, Incomplete
		}
		if end > l.MaxHeader {
			return nil, Foreign
		}
		req, status := parseHead(r.buf[:end], l.Path, l.MaxBody)
		if status != Ready {
			return nil, status
		}
		r.head, r.bodyAt = req, end
	}
	req := r.head
	total := r.bodyAt + int(req.ContentLength)
	if len(r.buf) < total {
		return nil, Incomplete
	}
	if req.ContentLength > 0 {
		req.Body = io.NopCloser(bytes.NewReader(bytes.Clone(r.buf[r.bodyAt:total])))
	} else {
		req.Body = http.NoBody
	}
	r.head, r.bodyAt, r.scanned, r.served = nil, 0, 0, total
	return req, Ready
}

// Served drops the request Next returned from the buffer, and returns its length.
func (r *Reader) Served() int {
	n := r.served
	r.buf = r.buf[:copy(r.buf, r.buf[n:])]
	r.served = 0
	if len(r.buf) == 0 && cap(r.buf) > 4096 {
		r.buf = nil
	}
	return n
}

// headerEnd returns where the header at the start of buf ends, after its blank line; -1 when
// it has not ended yet; -2 when a line of it ends in a bare LF, which net/http reads as a
// line's end and the Reader leaves to it. buf[:from] was searched before.
func headerEnd(buf []byte, from int) int {
	for i := from; i < len(buf); {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j
		if i == 0 || buf[i-1] != '\r' {
			return -2
		}
		if i >= 3 && buf[i-3] == '\r' && buf[i-2] == '\n' {
			return i + 1
		}
		i++
	}
	return -1
}

// parseHead parses a request's header, through its blank line, when it is a polling request
// of path: a GET or POST of exactly path with a sid, in HTTP/1.1, with a Content-Length (or
// none) of at most maxBody. It returns the request, without its body. It is strict: anything
// unusual (a folded or malformed line, a Transfer-Encoding, a Connection other than
// keep-alive, an upgrade, Expect, a duplicate Content-Length or Host, a control character) is
// Foreign, for net/http to answer by its own rules; what it accepts, net/http's ReadRequest
// reads the same way (FuzzParsePoll).
func parseHead(head []byte, path string, maxBody int64) (*http.Request, Status) {
	head = head[:len(head)-2] // every line with its CRLF
	eol := bytes.Index(head, []byte("\r\n"))
	line := head[:eol]
	head = head[eol+2:]
	var method string
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("POST ")):
		method, line = http.MethodPost, line[5:]
	default:
		return nil, Foreign
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || len(target) <= len(path) || string(target[:len(path)]) != path || target[len(path)] != '?' {
		return nil, Foreign
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return nil, Foreign
		}
	}
	query := target[len(path)+1:]
	if !bytes.Contains(query, []byte("sid=")) || !plainV4Query(query) {
		return nil, Foreign
	}

	h := make(http.Header, 8)
	host, hasHost := "", false
	length, hasLength := int64(0), false
	for len(head) > 0 {
		eol := bytes.Index(head, []byte("\r\n"))
		line := head[:eol]
		head = head[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validHeaderName(line[:colon]) {
			return nil, Foreign // also a folded line, which starts with a space
		}
		value := bytes.Trim(line[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, Foreign
			}
		}
		key := canonicalHeader(line[:colon])
		switch key {
		case "Host":
			if hasHost || !validHost(value) {
				return nil, Foreign
			}
			host, hasHost = string(value), true
			continue // net/http moves it to Request.Host
		case "Content-Length":
			if hasLength || !allDigits(value) || len(value) > 15 {
				return nil, Foreign
			}
			n, _ := strconv.ParseInt(string(value), 10, 64)
			if n > maxBody || method == http.MethodGet && n > 0 {
				return nil, Foreign
			}
			length, hasLength = n, true
		case "Transfer-Encoding", "Upgrade", "Expect", "Trailer":
			return nil, Foreign
		case "Connection":
			if !bytes.EqualFold(value, []byte("keep-alive")) {
				return nil, Foreign // close, upgrade, or anything net/http weighs itself
			}
		}
		h[key] = append(h[key], string(value))
	}
	if !hasHost {
		return nil, Foreign
	}
	uri := string(target)
	return &http.Request{
		Method:        method,
		URL:           &url.URL{Path: path, RawQuery: uri[len(path)+1:]},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          host,
		ContentLength: length,
		RequestURI:    uri,
	}, Ready
}

// plainV4Query reports whether a poll's query is Engine.IO v4's, not JSONP's: its first EIO
// is "4" and it has no j. Those of v3 (Engine.IO's legacy clients) and JSONP are answered in
// other forms than the one a held connection writes, and go to net/http. A query with a
// semicolon, or an escape in a key or in EIO's value, is left to net/http as well, which
// reads those by its own rules.
func plainV4Query(q []byte) bool {
	if bytes.IndexByte(q, ';') >= 0 {
		return false
	}
	eio := false
	for len(q) > 0 {
		var pair []byte
		pair, q, _ = bytes.Cut(q, []byte("&"))
		k, v, _ := bytes.Cut(pair, []byte("="))
		if bytes.ContainsAny(k, "%+") {
			return false
		}
		switch string(k) {
		case "j":
			return false
		case "EIO":
			if !eio {
				if string(v) != "4" {
					return false
				}
				eio = true
			}
		}
	}
	return eio
}

func allDigits(v []byte) bool {
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(v) > 0
}

// validHeaderName reports whether name is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(name []byte) bool {
	for _, c := range name {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validHost reports whether a Host header is plain enough to take as it is: a name or an
// address, maybe with a port; anything else is left to net/http.
func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_':
		default:
			return false
		}
	}
	return true
}

// commonHeaders are names clients send on a poll, in canonical form, so that parsing them
// allocates no key.
var commonHeaders = []string{
	"Host", "Connection", "Content-Length", "Content-Type", "Origin", "User-Agent", "Accept",
	"Accept-Encoding", "Accept-Language", "Referer", "Cookie", "Cache-Control", "Pragma",
	"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
	"Sec-Ch-Ua-Platform", "Priority", "Dnt", "X-Forwarded-For", "X-Forwarded-Proto",
	"Transfer-Encoding", "Upgrade", "Expect", "Trailer",
}

// canonicalHeader is textproto's canonical form of name, without allocating for the common
// names.
func canonicalHeader(name []byte) string {
	for _, k := range commonHeaders {
		if len(k) == len(name) && strings.EqualFold(k, string(name)) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}
