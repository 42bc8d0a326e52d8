package socketio

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// limitHits records OnLimit calls.
type limitHits struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *limitHits) hook(limit string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[limit]++
}

func (h *limitHits) get(limit string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[limit]
}

func TestMaxNamespacesPerConnection(t *testing.T) {
	var hits limitHits
	_, ts := newTestServer(t, Options{Namespaces: []string{"*"}, MaxNamespacesPerConnection: 2, OnLimit: hits.hook})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	c.Connect("/a", "")
	c.Write("40/b,")
	c.Expect(`44/b,{"message":"Too many namespaces on this connection (limit 2)"}`)
	if n := hits.get(LimitNamespaces); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitNamespaces, n)
	}
	// Leaving one makes room for another; the connection was never cut.
	c.Write("41/a,")
	c.Connect("/b", "")
	c.Write(`42/b,["still here"]`)
}

func TestMaxRoomsPerSocket(t *testing.T) {
	var hits limitHits
	srv, ts := newTestServer(t, Options{MaxRoomsPerSocket: 3, OnLimit: hits.hook})
	sockets := make(chan *Socket, 1)
	srv.Of("/").OnConnect(func(s *Socket) { sockets <- s })
	c := socketiotest.Dial(t, ts.URL, "")
	id := c.Connect("/", "")
	s := recv(t, sockets)
	s.Join("a", "b")
	s.Join("b", "c", "d", "e") // b again costs nothing; c fits; d and e do not
	want := []string{"a", "b", "c", id}
	if got := sortedRooms(s.Rooms()...); !slices.Equal(got, sortedRooms(want...)) {
		t.Errorf("rooms %v, want %v", got, want)
	}
	// The adapter's AddSockets (POST /join) goes through the same bound.
	if _, err := srv.Of("/").To(id).SocketsJoin(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	if got := sortedRooms(s.Rooms()...); !slices.Equal(got, sortedRooms(want...)) {
		t.Errorf("rooms after a join through the adapter %v, want %v", got, want)
	}
	if n := hits.get(LimitRooms); n != 2 {
		t.Errorf("OnLimit(%s) called %d times, want 2", LimitRooms, n)
	}
	// Leaving makes room.
	s.Leave("a")
	s.Join("f")
	if got := sortedRooms(s.Rooms()...); !slices.Equal(got, sortedRooms("b", "c", "f", id)) {
		t.Errorf("rooms %v", got)
	}
}

func TestMaxAttachments(t *testing.T) {
	var hits limitHits
	srv, ts := newTestServer(t, Options{MaxAttachments: 2, OnLimit: hits.hook})
	reasons := make(chan string, 1)
	srv.Of("/").OnConnect(func(s *Socket) {
		s.On("up", func(e *Event) { _ = e.Ack(len(e.Attachments)) })
		s.OnDisconnect(func(r string) { reasons <- r })
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	c.Write(`452-1["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	c.WriteBinary([]byte{1})
	c.WriteBinary([]byte{2})
	c.Expect(`431[2]`)
	c.Write(`453-["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`)
	if r := recv(t, reasons); r != engineio.ReasonParseError {
		t.Errorf("reason %q, want parse error", r)
	}
	c.ExpectClosed()
	if n := hits.get(LimitAttachments); n != 1 {
		t.Errorf("OnLimit(%s) called %d times, want 1", LimitAttachments, n)
	}
}

func TestEventRateLimit(t *testing.T) {
	var hits limitHits
	// No token comes back during the test: the burst of 3 is what passes.
	srv, ts := newTestServer(t, Options{EventsPerSecond: 0.001, EventBurst: 3, OnLimit: hits.hook})
	handled := make(chan string, 10)
	srv.Of("/").OnConnect(func(s *Socket) {
		s.On("e", func(e *Event) {
			handled <- string(e.Raw)
			_ = e.Ack("ok")
		})
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	for i := 1; i <= 3; i++ {
		c.Write(`42` + string(rune('0'+i)) + `["e",` + string(rune('0'+i)) + `]`)
		c.Expect(`43` + string(rune('0'+i)) + `["ok"]`)
	}
	c.Write(`424["e",4]`)
	c.Expect(`434[{"error":"rate limited"}]`)
	c.Write(`42["e",5]`) // no ack asked: dropped without a word
	c.Write(`425["e",6]`)
	c.Expect(`435[{"error":"rate limited"}]`)
	if n := hits.get(LimitEventRate); n != 3 {
		t.Errorf("OnLimit(%s) called %d times, want 3", LimitEventRate, n)
	}
	if n := len(handled); n != 3 {
		t.Errorf("%d events handled, want 3", n)
	}
	// The socket is still connected, and another socket has its own budget.
	d := socketiotest.Dial(t, ts.URL, "")
	d.Connect("/", "")
	d.Write(`427["e",7]`)
	d.Expect(`437["ok"]`)
}

func TestHandshakeAddressFromTrustedProxy(t *testing.T) {
	srv, ts := newTestServer(t, Options{Engine: engineio.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	addrs := make(chan string, 1)
	srv.Of("/").OnConnect(func(s *Socket) { addrs <- s.Handshake().Address })
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(u, http.Header{"X-Forwarded-For": {"198.51.100.23"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // the open packet
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, addrs); got != "198.51.100.23" {
		t.Errorf("handshake address %q, want the forwarded one", got)
	}
}
