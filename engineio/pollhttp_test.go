package engineio

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
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

// FuzzParsePoll checks the held connections' request parser against net/http's: whatever
// parsePoll accepts, http.ReadRequest reads alike (method, URL, Host, header, length), so a
// request served on a held connection is the request net/http would have handed the server.
func FuzzParsePoll(f *testing.F) {
	for _, s := range parsePollSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, end, status := parsePoll(data, "/socket.io/", 1e6)
		if status != reqReady {
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
		_, _, status := parsePoll([]byte(s), "/socket.io/", 1e6)
		if (status == reqReady) != ready[i] {
			t.Errorf("seed %d %q: status %d", i, s, status)
		}
	}
	if _, _, status := parsePoll([]byte("GET /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\n"), "/socket.io/", 1e6); status != reqIncomplete {
		t.Errorf("a header without its end: status %d, want incomplete", status)
	}
	if _, _, status := parsePoll(bytes.Repeat([]byte("x"), maxPollHeader+1), "/socket.io/", 1e6); status != reqForeign {
		t.Errorf("a header past the limit: status %d, want foreign", status)
	}
	post := "POST /socket.io/?sid=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000001\r\n\r\n"
	if _, _, status := parsePoll([]byte(post), "/socket.io/", 1e6); status != reqForeign {
		t.Errorf("a body past MaxPayload: status %d, want foreign (net/http refuses it)", status)
	}
}

// FuzzQuery checks the query reader against url.ParseQuery for the keys Engine.IO reads.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"EIO=4&transport=polling&sid=abc", "EIO=4&EIO=3", "sid=%41&EIO=4", "a;b=c&sid=x", "sid", "=&&sid=&", "transport=web+socket"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, _ := url.ParseQuery(raw)
		q := queryOf(raw)
		for _, k := range []string{"EIO", "transport", "sid"} {
			if got := q.Get(k); got != want.Get(k) {
				t.Fatalf("query %q, key %s: %q, url.ParseQuery %q", raw, k, got, want.Get(k))
			}
		}
	})
}
