package heldhttp

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

var parsePollSeeds = []string{
	"GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling&t=PabCd&sid=abc HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
	"POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n4hello",
	"GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\norigin: http://x\r\nsec-fetch-mode: cors\r\ncookie: a=b; c=d\r\nx-custom_header:  v \t\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\nAccept: a\r\nAccept: b\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
	"POST /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST /socket.io/?EIO=4&transport=polling&sid=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /socket.io/x?sid=a HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /socket.io/?sid=%41 HTTP/1.0\r\nHost: x\r\n\r\n",
	"GET /socket.io/?sid=a HTTP/1.1\r\nHost: bad host\r\n\r\n",
	"GET /socket.io/?sid=a HTTP/1.1\r\n\r\n",
	"GET /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\nBad\x01: y\r\n\r\n",
	"GET /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\nV: a\x7fb\r\n\r\n",
}

// FuzzParsePoll checks the Reader's request parser against net/http's: whatever parsePoll
// accepts, http.ReadRequest reads alike (method, URL, Host, header, length), so a request
// served on a held connection is the request net/http would have handed the server.
func FuzzParsePoll(f *testing.F) {
	for _, s := range parsePollSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, end, status := parsePoll(data)
		if status != Ready {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:end])))
		if err != nil {
			t.Fatalf("parsePoll accepted %q, net/http refuses it: %v", data[:end], err)
		}
		if want.Close || len(want.TransferEncoding) > 0 || want.ContentLength < 0 {
			t.Fatalf("parsePoll accepted %q: close %v, transfer encoding %v, length %d", data[:end], want.Close, want.TransferEncoding, want.ContentLength)
		}
		if req.Method != want.Method || req.URL.String() != want.URL.String() || req.Host != want.Host ||
			req.ContentLength != want.ContentLength || req.RequestURI != want.RequestURI ||
			req.Proto != want.Proto || !reflect.DeepEqual(req.Header, want.Header) {
			t.Fatalf("parsePoll and net/http differ on %q:\n%s %s %s host=%q len=%d %v\n%s %s %s host=%q len=%d %v", data[:end],
				req.Method, req.URL, req.RequestURI, req.Host, req.ContentLength, req.Header,
				want.Method, want.URL, want.RequestURI, want.Host, want.ContentLength, want.Header)
		}
	})
}

// The seeds themselves: which the parser serves, and which it leaves to net/http.
func TestParsePollAcceptsPollsOnly(t *testing.T) {
	ready := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}
	for i, s := range parsePollSeeds {
		_, _, status := parsePoll([]byte(s))
		if (status == Ready) != ready[i] {
			t.Errorf("seed %d %q: status %d", i, s, status)
		}
	}
	if _, _, status := parsePoll([]byte("GET /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\n")); status != Incomplete {
		t.Errorf("a header without its end: status %d, want incomplete", status)
	}
	if _, _, status := parsePoll(bytes.Repeat([]byte("x"), MaxHeaderBytes+1)); status != Foreign {
		t.Errorf("a header past the limit: status %d, want foreign", status)
	}
	// Engine.IO v3's polls and JSONP's are answered in other forms: net/http's.
	for _, q := range []string{"EIO=3&sid=a", "sid=a", "EIO=4&j=0&sid=a", "EIO=3&EIO=4&sid=a", "EIO=%34&sid=a", "E%49O=4&sid=a", "EIO=4;j=0&sid=a"} {
		if _, _, status := parsePoll([]byte("GET /socket.io/?" + q + " HTTP/1.1\r\nHost: x\r\n\r\n")); status != Foreign {
			t.Errorf("%s: status %d, want foreign", q, status)
		}
	}
	if _, _, status := parsePoll([]byte("GET /socket.io/?EIO=4&sid=a&EIO=3&x=%41 HTTP/1.1\r\nHost: x\r\n\r\n")); status != Ready {
		t.Errorf("a v4 poll: status %d, want ready", status)
	}
	post := "POST /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000001\r\n\r\n"
	if _, _, status := parsePoll([]byte(post)); status != Foreign {
		t.Errorf("a body past MaxPayload: status %d, want foreign (net/http refuses it)", status)
	}
}

// heldBoundaries feeds data to a Reader in pieces of the sizes split gives, as a held
// connection's reads would come, and returns where each request it serves ends, and whether
// it gave the rest to net/http (Foreign).
func heldBoundaries(data []byte, split uint8) (ends []int, reqs []*http.Request, foreign bool) {
	var r Reader
	n, offset := int(split)%31+1, 0
	for rest := data; len(rest) > 0; {
		k := min(n, len(rest))
		r.Append(rest[:k])
		rest = rest[k:]
		n = n*7%31 + 1
		for {
			req, status := r.Next(testLimits)
			if status == Foreign {
				return ends, reqs, true
			}
			if status != Ready {
				break
			}
			offset += r.Served()
			ends, reqs = append(ends, offset), append(reqs, req)
		}
	}
	return ends, reqs, false
}

// FuzzHeldBoundaries feeds the same stream, split anyhow, to a Reader and to net/http's
// request reader in a loop: they must agree on where each request ends, not
// only on what one request holds. Where the held parser stops serving (a request it leaves to
// net/http), net/http reads the rest.
func FuzzHeldBoundaries(f *testing.F) {
	const poll = "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\n\r\n"
	const post = "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n40"
	const smuggled = "GET /admin/secret HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789abc\r\n\r\n"
	for _, s := range []string{
		poll + post + poll,
		poll + "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 61\r\n\r\n" + smuggled,
		poll + "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3d\r\n" + smuggled + "\r\n0\r\n\r\n",
		post + "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n40\r\n0\r\n\r\n" + smuggled,
		"POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n40" + poll,
		poll + "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\nHost: x\n\n" + poll,
		post + "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + poll,
	} {
		f.Add([]byte(s), uint8(3))
	}
	for _, s := range parsePollSeeds {
		f.Add([]byte(s+s), uint8(11))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		ends, reqs, foreign := heldBoundaries(data, split)
		var want []int
		br := bufio.NewReader(bytes.NewReader(data))
		for read := 0; ; {
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				break
			}
			read = len(data) - br.Buffered()
			want = append(want, read)
		}
		if len(ends) > len(want) {
			t.Fatalf("the held parser served %d requests (ending at %v), net/http reads %d (%v)", len(ends), ends, len(want), want)
		}
		for i, end := range ends {
			if end != want[i] {
				t.Fatalf("request %d ends at %d for the held parser, at %d for net/http", i, end, want[i])
			}
			if m := reqs[i].Method; m == http.MethodGet && reqs[i].ContentLength != 0 {
				t.Fatalf("the held parser served a GET with a body: %q", data)
			}
		}
		if !foreign && len(want) > len(ends) {
			t.Fatalf("net/http reads %d requests (%v), the held parser served %d (%v) and waits for more", len(want), want, len(ends), ends)
		}
	})
}

// BenchmarkHeldHeaderTrickle: a polling request whose header comes a byte at a time, as a
// hostile client sends it, to a Reader. Each byte is looked at once: the cost per
// byte (ns/byte) does not grow with the header, which reaches MaxHeaderBytes here; a longer
// one goes to net/http.
func BenchmarkHeldHeaderTrickle(b *testing.B) {
	head := "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nCookie: " +
		strings.Repeat("c", MaxHeaderBytes-120) + "\r\n\r\n40"
	b.ReportAllocs()
	for b.Loop() {
		r := Reader{buf: make([]byte, 0, len(head))}
		served := false
		for i := range len(head) {
			r.buf = append(r.buf, head[i])
			if _, status := r.Next(testLimits); status == Ready {
				served = true
			} else if status == Foreign {
				b.Fatalf("handed off at byte %d", i)
			}
		}
		if !served {
			b.Fatal("the request was never served")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(head)), "ns/byte")
}

// TestHeldHeaderPastTheLimitGoesToNetHTTP: a header longer than MaxHeaderBytes is not
// searched further by the Reader, however it comes.
func TestHeldHeaderPastTheLimitGoesToNetHTTP(t *testing.T) {
	var r Reader
	head := "GET /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 50<<10)
	for i := range len(head) {
		r.Append([]byte{head[i]})
		_, status := r.Next(testLimits)
		if status == Foreign {
			if r.Len() != MaxHeaderBytes+1 {
				t.Fatalf("handed off after %d bytes, want %d", r.Len(), MaxHeaderBytes+1)
			}
			return
		}
		if status != Incomplete {
			t.Fatalf("status %d at byte %d", status, i)
		}
	}
	t.Fatal("never handed off")
}

// testLimits are a held connection's with engineio's defaults: path "/socket.io/", a header
// of at most MaxHeaderBytes, MaxPayload 1e6.
var testLimits = Limits{Path: "/socket.io/", MaxHeader: MaxHeaderBytes, MaxBody: 1e6}

// parsePoll reads the request at the start of buf as a held connection does (testLimits): the
// request, where its header ends, and the status.
func parsePoll(buf []byte) (*http.Request, int, Status) {
	r := Reader{buf: buf}
	req, status := r.Next(testLimits)
	if status != Ready {
		return nil, 0, status
	}
	return req, r.served - int(req.ContentLength), status
}
