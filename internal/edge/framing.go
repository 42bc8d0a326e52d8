package edge

import (
	"bytes"
	"net/http"
	"strconv"
)

// framer follows the requests of one connection as net/http reads them, byte for byte, to
// find what net/http would accept but a front proxy could read otherwise: a request with both
// Content-Length and Transfer-Encoding (net/http drops the Content-Length and reads the
// chunks, a proxy may do the reverse), a GET or HEAD with a body, a header larger than the
// limit, folded header lines, chunk trailers, and Transfer-Encoding below HTTP/1.1 (net/http
// ignores it there). It finds where each request ends as net/http does: the header up to its
// blank line (lines end in LF, with or without CR), then Content-Length bytes or the chunks
// up to the empty trailer (FuzzFraming checks it against http.ReadRequest).
//
// It only reads. When it finds a request to refuse it stops and keeps the verdict, which the
// handler answers; after an upgrade request it stops too, as what follows is no longer HTTP.
type framer struct {
	maxHeader int // the largest header, request line included, in bytes

	state    frameState
	verdict  Verdict // once refused: why; the framer has stopped
	requests int     // requests whose end was found

	// The header being read.
	headLen  int    // its bytes so far
	line     []byte // the current line, its first maxKeptLine bytes
	lineLen  int    // the current line's length so far
	tail     [16]byte
	lineNo   int   // lines of this header completed, the request line included
	bodyless bool  // GET or HEAD
	http11   bool  // HTTP/1.1 exactly: Transfer-Encoding counts
	length   int64 // Content-Length's value; -1 without one
	lengthOK bool  // every Content-Length was valid and equal
	encoding int   // Transfer-Encoding lines
	chunked  bool  // one Transfer-Encoding, "chunked"
	upgrade  bool  // an Upgrade header

	remain int64 // body or chunk data bytes left
}

type frameState uint8

const (
	stateHead      frameState = iota // reading a header
	stateBody                        // Content-Length bytes left
	stateChunkLine                   // a chunk-size line
	stateChunkData                   // chunk data bytes left
	stateChunkCR                     // the CR after chunk data
	stateChunkLF                     // the LF after chunk data
	stateTrailerCR                   // the CR of the empty trailer
	stateTrailerLF                   // its LF
	stateThrough                     // stopped: an upgrade, or a refusal
)

// maxKeptLine is how much of a line the framer keeps: enough for the request line's method
// and the values it reads (a request line's version is read from its tail).
const maxKeptLine = 256

// maxChunkLine is net/http's bound on a chunk-size line, its CRLF included (its read buffer).
const maxChunkLine = 4096

// Verdict is why a request is refused, and with which status.
type Verdict struct {
	Status int    // 400 or 431; 0: not refused
	Reason string // for the client and the log
	Limit  string // the name counted (see Options.OnRefuse)
}

var (
	verdictLengthAndEncoding = Verdict{http.StatusBadRequest, "a request may not have both Content-Length and Transfer-Encoding", LimitFraming}
	verdictBodyless          = Verdict{http.StatusBadRequest, "a GET or HEAD request may not have a body", LimitFraming}
	verdictFolded            = Verdict{http.StatusBadRequest, "folded header lines are not accepted", LimitFraming}
	verdictTrailer           = Verdict{http.StatusBadRequest, "chunk trailers are not accepted", LimitFraming}
	verdictChunks            = Verdict{http.StatusBadRequest, "malformed chunked body", LimitFraming}
	verdictEncoding          = Verdict{http.StatusBadRequest, "unsupported Transfer-Encoding", LimitFraming}
	verdictLength            = Verdict{http.StatusBadRequest, "invalid Content-Length", LimitFraming}
	verdictHeaderLine        = Verdict{http.StatusBadRequest, "malformed header line", LimitFraming}
	verdictHeaderSize        = Verdict{http.StatusRequestHeaderFieldsTooLarge, "request header too large", LimitHeaderBytes}
)

func newFramer(maxHeader int) *framer {
	f := &framer{maxHeader: maxHeader}
	f.startHead()
	return f
}

func (f *framer) startHead() {
	f.state = stateHead
	f.headLen, f.lineLen, f.lineNo = 0, 0, 0
	f.line = f.line[:0]
	f.bodyless, f.http11, f.upgrade, f.chunked = false, false, false, false
	f.length, f.lengthOK, f.encoding = -1, true, 0
}

// stopped reports whether the framer no longer reads: a refusal or an upgrade.
func (f *framer) stopped() bool { return f.state == stateThrough }

func (f *framer) refuse(v Verdict) {
	f.verdict = v
	f.stop()
}

// stop ends the framer for good (stopped is never undone): a WebSocket that sits idle for
// hours keeps no line buffer.
func (f *framer) stop() {
	f.state = stateThrough
	f.line = nil
}

// feed reads p, which follows what it was fed before.
func (f *framer) feed(p []byte) {
	for len(p) > 0 {
		switch f.state {
		case stateThrough:
			return
		case stateHead:
			p = f.head(p)
		case stateBody:
			n := min(int64(len(p)), f.remain)
			p, f.remain = p[n:], f.remain-n
			if f.remain == 0 {
				f.endRequest()
			}
		case stateChunkData:
			n := min(int64(len(p)), f.remain)
			p, f.remain = p[n:], f.remain-n
			if f.remain == 0 {
				f.state = stateChunkCR
			}
		case stateChunkCR:
			p = f.expect(p, '\r', verdictChunks, stateChunkLF)
		case stateChunkLF:
			p = f.expect(p, '\n', verdictChunks, stateChunkLine)
		case stateTrailerCR:
			p = f.expect(p, '\r', verdictTrailer, stateTrailerLF)
		case stateTrailerLF:
			if p = f.expect(p, '\n', verdictTrailer, stateHead); f.state == stateHead {
				f.endRequest()
			}
		case stateChunkLine:
			p = f.chunkLine(p)
		}
	}
}

// expect reads c, the first byte of p, and goes to next; another byte is refused with v.
func (f *framer) expect(p []byte, c byte, v Verdict, next frameState) []byte {
	if p[0] != c {
		f.refuse(v)
		return nil
	}
	f.state = next
	return p[1:]
}

func (f *framer) endRequest() {
	f.requests++
	f.startHead()
}

// head reads header bytes from p, and returns what follows the header once it is complete.
func (f *framer) head(p []byte) []byte {
	for len(p) > 0 && f.state == stateHead {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		f.headLen += len(part)
		if i >= 0 {
			f.headLen++
		}
		if f.headLen > f.maxHeader {
			f.refuse(verdictHeaderSize)
			return nil
		}
		f.addLine(part)
		if i < 0 {
			return nil
		}
		p = p[i+1:]
		f.endLine()
	}
	return p
}

// addLine adds part to the current line: its first maxKeptLine bytes are kept, and its last
// len(tail) bytes.
func (f *framer) addLine(part []byte) {
	f.lineLen += len(part)
	if keep := maxKeptLine - len(f.line); keep > 0 {
		f.line = append(f.line, part[:min(keep, len(part))]...)
	}
	if len(part) >= len(f.tail) {
		copy(f.tail[:], part[len(part)-len(f.tail):])
	} else {
		copy(f.tail[:], f.tail[len(part):])
		copy(f.tail[len(f.tail)-len(part):], part)
	}
}

// endLine reads the line just completed, its LF dropped, and its CR before it (as
// bufio.Reader.ReadLine does for net/http).
func (f *framer) endLine() {
	n := f.lineLen
	if n > 0 && f.tail[len(f.tail)-1] == '\r' {
		n--
	}
	line := f.line[:min(n, len(f.line))]
	long := n > len(line)
	end := len(f.tail) - (f.lineLen - n)  // without the CR
	tail := f.tail[end-min(n, end) : end] // the line's last bytes
	f.lineNo++
	f.line, f.lineLen = f.line[:0], 0
	switch {
	case f.lineNo == 1:
		f.requestLine(line, tail)
	case n == 0:
		f.endHead()
	case line[0] == ' ' || line[0] == '\t':
		f.refuse(verdictFolded)
	default:
		f.field(line, long)
	}
}

// requestLine reads the method, at the start of "METHOD target HTTP/1.1", and the version at
// its end. What net/http refuses (a malformed line) is left to it.
func (f *framer) requestLine(line, tail []byte) {
	f.bodyless = bytes.HasPrefix(line, []byte("GET ")) || bytes.HasPrefix(line, []byte("HEAD "))
	f.http11 = bytes.HasSuffix(tail, []byte(" HTTP/1.1"))
}

// field reads one header line: Content-Length, Transfer-Encoding and Upgrade matter.
func (f *framer) field(line []byte, long bool) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		f.refuse(verdictHeaderLine) // net/http refuses it too
		return
	}
	switch {
	case asciiEqualFold(name, "Content-Length"):
		if long {
			f.refuse(verdictLength)
			return
		}
		n, ok := parseLength(bytes.Trim(value, " \t"))
		if !ok || f.length >= 0 && n != f.length {
			f.lengthOK = false
		}
		f.length = n
	case asciiEqualFold(name, "Transfer-Encoding"):
		f.encoding++
		f.chunked = f.encoding == 1 && !long && asciiEqualFold(bytes.Trim(value, " \t"), "chunked")
	case asciiEqualFold(name, "Upgrade"):
		f.upgrade = true
	}
}

// endHead decides on the header just read, and how its body is framed.
func (f *framer) endHead() {
	switch {
	case f.encoding > 0 && f.length >= 0 || f.encoding > 0 && !f.lengthOK:
		f.refuse(verdictLengthAndEncoding)
	case !f.lengthOK:
		f.refuse(verdictLength)
	case f.bodyless && (f.encoding > 0 || f.length > 0):
		f.refuse(verdictBodyless)
	case f.encoding > 0 && (!f.http11 || !f.chunked):
		// Below HTTP/1.1 net/http ignores Transfer-Encoding and would read the chunks as the
		// next request; anything but one "chunked" it refuses (501).
		f.refuse(verdictEncoding)
	case f.upgrade:
		// What follows a successful upgrade is not HTTP; a failed one closes the connection
		// (see Handler).
		f.stop()
	case f.chunked:
		f.state = stateChunkLine
	case f.length > 0:
		f.state, f.remain = stateBody, f.length
	default:
		f.endRequest()
	}
}

// chunkLine reads a chunk-size line: hex digits, maybe an extension after ';', CRLF. As
// net/http, a bare LF or a CR elsewhere is malformed, and so is a line of maxChunkLine bytes.
func (f *framer) chunkLine(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	part := p
	if i >= 0 {
		part = p[:i+1]
	}
	f.lineLen += len(part)
	if f.lineLen > maxChunkLine {
		f.refuse(verdictChunks)
		return nil
	}
	if keep := maxKeptLine - len(f.line); keep > 0 {
		f.line = append(f.line, part[:min(keep, len(part))]...)
	}
	if i < 0 {
		return nil
	}
	line, long := f.line, f.lineLen > len(f.line)
	f.line, f.lineLen = f.line[:0], 0
	// line ends in "\n"; net/http wants "\r\n" and no other CR.
	if long || len(line) < 2 || line[len(line)-2] != '\r' || bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
		f.refuse(verdictChunks)
		return nil
	}
	size := bytes.TrimRight(line[:len(line)-2], " \t")
	size, _, _ = bytes.Cut(size, []byte(";"))
	n, ok := parseHex(size)
	if !ok {
		f.refuse(verdictChunks)
		return nil
	}
	if n == 0 {
		f.state = stateTrailerCR
	} else {
		f.state, f.remain = stateChunkData, n
	}
	return p[i+1:]
}

// parseLength parses a Content-Length value as net/http does: decimal digits, below 2^63.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 63)
	return int64(n), err == nil
}

// parseHex parses a chunk size as net/http does: 1 to 16 hex digits. A size of 2^63 or more
// is refused (net/http would take it, and wait for that much).
func parseHex(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	if n >= 1<<63 {
		return 0, false
	}
	return int64(n), true
}

// asciiEqualFold reports whether b equals s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
