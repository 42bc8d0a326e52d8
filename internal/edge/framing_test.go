package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// frame feeds data to a new framer one byte at a time and returns where each request ended,
// and the verdict if it refused one.
func frame(data []byte, maxHeader int) (ends []int, f *framer) {
	f = newFramer(maxHeader)
	for i := range data {
		f.feed(data[i : i+1])
		if f.requests > len(ends) {
			ends = append(ends, i+1)
		}
		if f.stopped() {
			break
		}
	}
	return ends, f
}

func TestFraming(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name string
		data string
		ends int // requests whose end is found
		want Verdict
	}{
		{"GETs", get + get + "GET /x HTTP/1.1\nHost: a\n\n", 3, Verdict{}},
		{"POST with a length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /" + get, 2, Verdict{}},
		{"POST chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nGET /\r\n10 \r\n0123456789abcdef\r\n0\r\n\r\n" + get, 2, Verdict{}},
		{"equal lengths", "POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab" + get, 2, Verdict{}},
		{"HEAD with length 0", "HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + get, 2, Verdict{}},
		{"length and chunked", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, verdictLengthAndEncoding},
		{"chunked and length", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 0, verdictLengthAndEncoding},
		{"GET with a length", get + "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 1, verdictBodyless},
		{"HEAD chunked", "HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, verdictBodyless},
		{"HTTP/1.0 chunked", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, verdictEncoding},
		{"two encodings", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, verdictEncoding},
		{"gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, verdictEncoding},
		{"lengths differ", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 0, verdictLength},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 0, verdictLength},
		{"folded", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n", 0, verdictFolded},
		{"trailer", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n", 0, verdictTrailer},
		{"bare LF in a chunk line", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n", 0, verdictChunks},
		{"no CRLF after chunk data", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", 0, verdictChunks},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 0, verdictHeaderLine},
		{"header too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", 0, verdictHeaderSize},
		{"upgrade", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", 0, Verdict{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ends, f := frame([]byte(c.data), 100)
			if len(ends) != c.ends || f.verdict != c.want {
				t.Fatalf("%d requests ended, verdict %+v; want %d, %+v", len(ends), f.verdict, c.ends, c.want)
			}
			// Fed at once, the framer comes to the same.
			g := newFramer(100)
			g.feed([]byte(c.data))
			if g.requests != f.requests || g.verdict != f.verdict || g.state != f.state {
				t.Fatalf("fed at once: %d requests, %+v, state %d; byte by byte: %d, %+v, %d",
					g.requests, g.verdict, g.state, f.requests, f.verdict, f.state)
			}
		})
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// httpRequest is one request as net/http reads it from a stream.
type httpRequest struct {
	start, end int // its bytes in the stream
	req        *http.Request
}

// readRequests reads data as net/http's server does: a request, its body to the end, the
// next request; it stops at the first error.
func readRequests(data []byte) []httpRequest {
	cr := &countingReader{r: bytes.NewReader(data)}
	br := bufio.NewReaderSize(cr, 4096)
	var reqs []httpRequest
	start := 0
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return reqs
		}
		end := cr.n - br.Buffered()
		reqs = append(reqs, httpRequest{start, end, req})
		start = end
	}
}

var contentLengthLine = regexp.MustCompile(`(?i)\ncontent-length:`)

// FuzzFraming feeds the same stream to the framer and to net/http's request reader: they
// must agree on where each request ends, and the framer must refuse every request that has
// both Content-Length and Transfer-Encoding, or a body on a GET or HEAD, by the time net/http
// has read it.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: a\r\nContent-Length: 61\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789abc\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3d\r\nGET /admin/secret HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789abc\r\n\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b\"\r\nx\r\n0\r\nTrailer: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		const maxHeader = 1 << 20 // net/http's reader has no limit of its own
		ends, fr := frame(data, maxHeader)
		reqs := readRequests(data)

		for i := range min(len(ends), len(reqs)) {
			if ends[i] != reqs[i].end {
				t.Fatalf("request %d ends at %d for the framer, at %d for net/http", i, ends[i], reqs[i].end)
			}
		}
		if len(reqs) > len(ends) && !fr.stopped() {
			t.Fatalf("net/http read %d requests, the framer found the end of %d and goes on", len(reqs), len(ends))
		}
		// What must be refused is, by the time net/http has read it.
		for i, r := range reqs {
			head, _, _ := bytes.Cut(data[r.start:r.end], []byte("\r\n\r\n"))
			why := ""
			switch {
			case len(r.req.TransferEncoding) > 0 && contentLengthLine.Match(head):
				why = "Content-Length and Transfer-Encoding"
			case (r.req.Method == http.MethodGet || r.req.Method == http.MethodHead) && (r.req.ContentLength > 0 || len(r.req.TransferEncoding) > 0):
				why = "a body on " + r.req.Method
			}
			if why != "" && (len(ends) > i || fr.verdict.Status == 0) {
				t.Fatalf("request %d has %s and was not refused (the framer ended %d requests, verdict %+v)", i, why, len(ends), fr.verdict)
			}
		}
		// Fed in pieces of any size, the framer comes to the same.
		g := newFramer(maxHeader)
		n := int(split)%31 + 1
		for rest := data; len(rest) > 0 && !g.stopped(); {
			k := min(n, len(rest))
			g.feed(rest[:k])
			rest = rest[k:]
			n = n*7%31 + 1
		}
		if g.requests != fr.requests || g.verdict != fr.verdict {
			t.Fatalf("fed in pieces: %d requests, %+v; byte by byte: %d, %+v", g.requests, g.verdict, fr.requests, fr.verdict)
		}
	})
}

var _ = fmt.Sprint
