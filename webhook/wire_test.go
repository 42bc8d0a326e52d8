package webhook

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWireBytes pins what the app reads from the connection, byte for byte: the request line,
// every header in the order sent, and the body, on a first attempt and on a retry of the same
// delivery (a 503 first), over one keep-alive connection. Only the signature's timestamp
// varies; its HMAC is checked against it.
func TestWireBytes(t *testing.T) {
	const secret = "s3cret"
	body := `{"id":"wire-id","type":"event","namespace":"/","args":["héllo"]}`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads := make(chan string, 4)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			var head strings.Builder
			n := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if k, v, ok := strings.Cut(line, ": "); ok && k == "Content-Length" {
					n, _ = strconv.Atoi(strings.TrimSpace(v))
				}
				if line == "\r\n" {
					break
				}
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			heads <- head.String() + string(b)
			reply := "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
			if i > 0 {
				reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ack\":[1]}"
			}
			if _, err := io.WriteString(c, reply); err != nil {
				return
			}
		}
	}()
	d := newDeliverer(t, DelivererOptions{URL: "http://" + ln.Addr().String() + "/hook?x=1", Secret: secret})
	res := deliver(t, d, "sock", &Delivery{ID: "wire-id", Kind: KindEvent, Body: []byte(body)})
	if res.Err != nil || res.StatusCode != http.StatusOK || string(res.Body) != `{"ack":[1]}` || res.Attempts != 2 {
		t.Fatalf("result: %+v", res)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		got := receive(t, heads, "the request")
		_, sig, _ := strings.Cut(got, "X-Siobridge-Signature: ")
		sig, _, _ = strings.Cut(sig, "\r\n")
		ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if want := Sign(secret, time.Unix(sec, 0), []byte(body)); sig != want {
			t.Errorf("attempt %d: signature %q, want %q", attempt, sig, want)
		}
		want := "POST /hook?x=1 HTTP/1.1\r\n" +
			"Host: " + ln.Addr().String() + "\r\n" +
			"User-Agent: siobridge\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
			"Content-Type: application/json\r\n" +
			"X-Siobridge-Attempt: " + strconv.Itoa(attempt) + "\r\n" +
			"X-Siobridge-Delivery: wire-id\r\n" +
			"X-Siobridge-Signature: " + sig + "\r\n" +
			"X-Siobridge-Type: event\r\n" +
			"Accept-Encoding: gzip\r\n" +
			"\r\n" + body
		if got != want {
			t.Errorf("attempt %d: the app read\n%q\nwant\n%q", attempt, got, want)
		}
	}
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestOneWritePerRequest: a webhook's header and body go to the connection in one write, as
// net/http does for a body it knows to be in memory, so the app is not woken twice for one
// request and the socket carries one segment.
func TestOneWritePerRequest(t *testing.T) {
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	var writes atomic.Int32
	dialer := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &writes}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Secret: "s", Transport: tr})
	for i := 1; i <= 3; i++ {
		if res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{"type":"event","n":1}`)}); res.Err != nil {
			t.Fatal(res.Err)
		}
		if n := writes.Load(); n != int32(i) {
			t.Fatalf("%d webhooks took %d writes, want %d", i, n, i)
		}
	}
}

// TestRedirectLocation: a redirect is reported as it is, not followed; one whose Location
// cannot be read fails the attempt as a connection error does, and is retried.
func TestRedirectLocation(t *testing.T) {
	for _, tt := range []struct {
		location string
		status   int
		attempts int
		err      string
	}{
		{"/elsewhere", http.StatusFound, 1, "302 Found after 1 attempt (redirects are not followed"},
		{":not a url", 0, 2, `failed to parse Location header ":not a url": parse ":not a url": missing protocol scheme after 2 attempts`},
	} {
		app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", tt.location)
			w.WriteHeader(http.StatusFound)
		})
		d := newDeliverer(t, DelivererOptions{URL: app.URL, MaxAttempts: 2})
		res := deliver(t, d, "k", &Delivery{Kind: KindEvent, Body: []byte(`{}`)})
		if res.Err == nil || !strings.Contains(res.Err.Error(), tt.err) || res.StatusCode != tt.status || res.Attempts != tt.attempts {
			t.Errorf("Location %q: %+v, want status %d after %d attempts, error %q", tt.location, res, tt.status, tt.attempts, tt.err)
		}
	}
}
