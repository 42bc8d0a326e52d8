package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sioServer is a real Socket.IO server on a loopback listener. connected receives each
// socket's id once it is in its namespace and rooms, which the client's CONNECT reply alone
// does not guarantee.
type sioServer struct {
	srv       *socketio.Server
	ts        *httptest.Server
	connected chan string
}

func newSIOServer(t *testing.T, opts socketio.Options) *sioServer {
	t.Helper()
	s := &sioServer{srv: socketio.NewServer(opts), connected: make(chan string, 16)}
	names := []string{"/"}
	for _, n := range opts.Namespaces {
		if n != "*" {
			names = append(names, n)
		}
	}
	for _, n := range names {
		s.srv.Of(n).OnConnect(func(sock *socketio.Socket) { s.connected <- sock.ID() })
	}
	s.ts = httptest.NewServer(s.srv)
	t.Cleanup(func() {
		s.srv.Close()
		s.ts.Close()
	})
	return s
}

// connect dials and joins nsp, waiting until the server has the socket in the namespace.
func (s *sioServer) connect(t *testing.T, nsp string) (*socketiotest.Client, string) {
	t.Helper()
	c := socketiotest.Dial(t, s.ts.URL, "")
	sid := c.Connect(nsp, "")
	if got := recv(t, s.connected); got != sid {
		t.Fatalf("connected socket %q, want %q", got, sid)
	}
	return c, sid
}

// probe emits a marker event to every socket of "/" and checks it is the next thing each
// client reads: nothing else reached them before it.
func (s *sioServer) probe(t *testing.T, clients ...*socketiotest.Client) {
	t.Helper()
	if _, err := s.srv.Of("/").Emit("probe"); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.Expect(`42["probe"]`)
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		var zero T
		return zero
	}
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   string
}

// fetch sends one request with client and reads the whole answer; safe on any goroutine.
func fetch(client *http.Client, method, url, body string, header http.Header) (response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host // the client sends req.Host, never a Host in req.Header
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{res.StatusCode, res.Header, string(b)}, nil
}

// do is fetch on the test's goroutine.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) response {
	t.Helper()
	res, err := fetch(client, method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res
}
