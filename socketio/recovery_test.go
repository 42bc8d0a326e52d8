package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// recoveryServer is a server with recovery whose "/" sockets join "r" and keep data, and
// report their connects and disconnects.
type recoveryServer struct {
	srv          *Server
	ns           *Namespace
	url          string
	connected    chan *Socket
	disconnected chan string
}

func newRecoveryServer(t *testing.T, opts RecoveryOptions) *recoveryServer {
	t.Helper()
	srv, ts := newTestServer(t, Options{Recovery: opts})
	rs := &recoveryServer{srv: srv, ns: srv.Of("/"), url: ts.URL,
		connected: make(chan *Socket, 16), disconnected: make(chan string, 16)}
	rs.ns.OnConnect(func(s *Socket) {
		if !s.Recovered() {
			s.Join("r")
			s.SetData(map[string]any{"user": "bob"})
		}
		s.OnDisconnect(func(reason string) { rs.disconnected <- reason })
		rs.connected <- s
	})
	return rs
}

func (rs *recoveryServer) log() *recoveryLog { return rs.ns.log }

// cut drops the client's TCP connection and waits for the server to see it.
func (rs *recoveryServer) cut(t *testing.T, c *socketiotest.Client) {
	t.Helper()
	c.Conn.Close()
	if reason := recv(t, rs.disconnected); !recoverableReasons[reason] {
		t.Fatalf("disconnect reason %q is not one a session is kept for", reason)
	}
}

func TestRecoveryOffSendsNoPidNorOffsets(t *testing.T) {
	srv, ts := newTestServer(t, Options{})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", `{"pid":"x","offset":"y"}`) // fails unless the answer is exactly {"sid"}
	if srv.Of("/").Recovery() {
		t.Fatal("recovery on without Options.Recovery")
	}
	srv.Of("/").Emit("news", 1)
	c.Expect(`42["news",1]`)
}

func TestRecoveryPidAndOffsets(t *testing.T) {
	rs := newRecoveryServer(t, RecoveryOptions{MaxDisconnection: time.Minute})
	c := socketiotest.Dial(t, rs.url, "")
	body := c.ConnectFields(`{"token":"t"}`)
	if len(body) != 2 || body["sid"] == "" || body["pid"] == "" || body["pid"] == body["sid"] {
		t.Fatalf("CONNECT answer %v: want sid and a distinct pid", body)
	}
	s := recv(t, rs.connected)
	if string(s.Handshake().Auth) != `{"token":"t"}` {
		t.Fatalf("auth %s", s.Handshake().Auth)
	}

	var offsets []string
	emits := []struct {
		name   string
		emit   func() error
		stored bool
	}{
		{"room broadcast", func() error { _, err := rs.ns.To("r").Emit("e", "room"); return err }, true},
		{"namespace broadcast", func() error { _, err := rs.ns.Emit("e", "all"); return err }, true},
		{"socket emit", func() error { return s.Emit("e", "own") }, true},
		{"binary", func() error { _, err := rs.ns.Emit("e", []byte{1}); return err }, true},
		{"volatile", func() error { _, err := rs.ns.All().Volatile().Emit("e", "volatile"); return err }, false},
	}
	for _, e := range emits {
		if err := e.emit(); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		var msg string
		if e.name == "binary" {
			msg = c.Read()
			if bin := c.Read(); bin != "bin:\x01" {
				t.Fatalf("attachment %q", bin)
			}
			msg = strings.Replace(msg, "451-", "42", 1)
		} else {
			msg = c.Read()
		}
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(strings.TrimPrefix(msg, "42")), &arr); err != nil {
			t.Fatalf("%s: %q", e.name, msg)
		}
		if e.stored != (len(arr) == 3) {
			t.Fatalf("%s: got %q, stored=%v", e.name, msg, e.stored)
		}
		if e.stored {
			offsets = append(offsets, socketiotest.Offset(t, arr))
		}
	}
	if len(slices.Compact(slices.Clone(offsets))) != len(offsets) {
		t.Fatalf("offsets not distinct: %v", offsets)
	}

	// An emit with ack is never stored: its callback cannot outlive the connection.
	done := make(chan error, 1)
	go func() {
		_, err := s.EmitWithAck(context.Background(), "q", "x")
		done <- err
	}()
	if got := c.Read(); !strings.HasPrefix(got, `42`) || !strings.HasSuffix(got, `["q","x"]`) {
		t.Fatalf("emit with ack: %q", got)
	} else {
		c.Write("43" + strings.TrimSuffix(strings.TrimPrefix(got, "42"), `["q","x"]`) + "[]")
	}
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryRestoresSocketAndReplaysInOrder(t *testing.T) {
	rs := newRecoveryServer(t, RecoveryOptions{MaxDisconnection: time.Minute})
	c := socketiotest.Dial(t, rs.url, "")
	first := c.ConnectFields("")
	s := recv(t, rs.connected)
	rs.ns.To("r").Emit("e", 0)
	offset := socketiotest.Offset(t, c.ReadEvent())
	rs.cut(t, c)

	// While the client is away: what it would have received, and what it would not.
	rs.ns.To("r").Emit("e", 1)
	rs.ns.Emit("e", 2)
	rs.ns.To("other").Emit("x", "not in other")
	rs.ns.Except("r").Emit("x", "excepted")
	rs.ns.All().Volatile().Emit("x", "volatile")
	rs.ns.To(first["sid"]).Emit("e", 3)
	rs.ns.To("other", "r").Except("nobody").Emit("e", 4)
	if _, err := rs.ns.To("r").EmitWithAck(context.Background(), "x", "with ack"); err != nil {
		t.Fatal(err)
	}

	c2 := socketiotest.Dial(t, rs.url, "")
	auth := fmt.Sprintf(`{"pid":%q,"offset":%q,"token":"t"}`, first["pid"], offset)
	again := c2.ConnectFields(auth)
	if again["sid"] != first["sid"] || again["pid"] != first["pid"] {
		t.Fatalf("restored %v, was %v", again, first)
	}
	for want := 1; want <= 4; want++ {
		arr := c2.ReadEvent()
		if string(arr[0]) != `"e"` || string(arr[1]) != fmt.Sprint(want) {
			t.Fatalf("replayed packet %d: %s", want, arr)
		}
	}
	rs.ns.Emit("e", "new")
	if arr := c2.ReadEvent(); string(arr[1]) != `"new"` {
		t.Fatalf("after the replay: %s", arr)
	}

	s2 := recv(t, rs.connected)
	if s2 == s || s2.ID() != s.ID() || !s2.Recovered() {
		t.Fatalf("socket %s recovered=%v, was %s", s2.ID(), s2.Recovered(), s.ID())
	}
	if got := s2.Rooms(); !slices.Equal(got, sortedRooms(s.ID(), "r")) {
		t.Fatalf("rooms %v", got)
	}
	if d, _ := s2.Data().(map[string]any); d["user"] != "bob" {
		t.Fatalf("data %v", s2.Data())
	}
	if string(s2.Handshake().Auth) != `{"token":"t"}` {
		t.Fatalf("auth shows %s; the pid must stay private", s2.Handshake().Auth)
	}
	// A session is restored once: the same pid again gets a fresh socket.
	c3 := socketiotest.Dial(t, rs.url, "")
	if third := c3.ConnectFields(auth); third["sid"] == first["sid"] || third["pid"] == first["pid"] {
		t.Fatalf("session restored twice: %v", third)
	}
}

func TestRecoveryNotKeptAfterNamespaceDisconnect(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *socketiotest.Client, s *Socket)
	}{
		{"client", func(c *socketiotest.Client, _ *Socket) { c.Write("41") }},
		{"server", func(_ *socketiotest.Client, s *Socket) { s.Disconnect(false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newRecoveryServer(t, RecoveryOptions{MaxDisconnection: time.Minute})
			c := socketiotest.Dial(t, rs.url, "")
			first := c.ConnectFields("")
			s := recv(t, rs.connected)
			rs.ns.Emit("e", 0)
			offset := socketiotest.Offset(t, c.ReadEvent())
			tc.end(c, s)
			if reason := recv(t, rs.disconnected); recoverableReasons[reason] {
				t.Fatalf("reason %q", reason)
			}
			c2 := socketiotest.Dial(t, rs.url, "")
			again := c2.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offset))
			if again["sid"] == first["sid"] || recv(t, rs.connected).Recovered() {
				t.Fatalf("recovered after a namespace disconnect: %v", again)
			}
		})
	}
}

func TestRecoveryWindow(t *testing.T) {
	rs := newRecoveryServer(t, RecoveryOptions{MaxDisconnection: time.Minute})
	l := rs.log()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.mu.Lock()
	l.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l.mu.Unlock()
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	session := func() (map[string]string, string) {
		c := socketiotest.Dial(t, rs.url, "")
		body := c.ConnectFields("")
		recv(t, rs.connected)
		rs.ns.To(body["sid"]).Emit("e", 0)
		off := socketiotest.Offset(t, c.ReadEvent())
		rs.cut(t, c)
		return body, off
	}
	reconnect := func(body map[string]string, off string) bool {
		c := socketiotest.Dial(t, rs.url, "")
		again := c.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, body["pid"], off))
		s := recv(t, rs.connected)
		return again["sid"] == body["sid"] && s.Recovered()
	}

	body, off := session()
	advance(59 * time.Second)
	if !reconnect(body, off) {
		t.Fatal("not recovered within the window")
	}

	body, off = session()
	advance(61 * time.Second)
	if reconnect(body, off) {
		t.Fatal("recovered after the window")
	}

	// The sweep drops expired sessions and packets without anyone asking for them.
	session()
	l.mu.Lock()
	sessions, packets := len(l.sessions), len(l.pkts)-l.head
	l.mu.Unlock()
	if sessions != 1 || packets == 0 {
		t.Fatalf("before the sweep: %d sessions, %d packets", sessions, packets)
	}
	advance(61 * time.Second)
	rs.srv.sweepRecovery()
	l.mu.Lock()
	sessions, packets = len(l.sessions), len(l.pkts)-l.head
	l.mu.Unlock()
	if sessions != 0 || packets != 0 {
		t.Fatalf("after the sweep: %d sessions, %d packets", sessions, packets)
	}
}

func TestRecoveryBound(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      RecoveryOptions
		missed    int
		recovered bool
	}{
		// The packet at the offset may go; what the client missed after it must all be there.
		{"all missed packets kept", RecoveryOptions{MaxPackets: 3}, 3, true},
		{"one missed packet evicted", RecoveryOptions{MaxPackets: 3}, 4, false},
		{"evicted by size", RecoveryOptions{MaxBytes: 100}, 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.MaxDisconnection = time.Minute
			rs := newRecoveryServer(t, tc.opts)
			c := socketiotest.Dial(t, rs.url, "")
			first := c.ConnectFields("")
			recv(t, rs.connected)
			rs.ns.Emit("e", 0)
			offset := socketiotest.Offset(t, c.ReadEvent())
			rs.cut(t, c)
			for i := 1; i <= tc.missed; i++ {
				rs.ns.Emit("e", i)
			}
			c2 := socketiotest.Dial(t, rs.url, "")
			again := c2.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offset))
			s := recv(t, rs.connected)
			if got := again["sid"] == first["sid"] && s.Recovered(); got != tc.recovered {
				t.Fatalf("recovered %v, want %v (%v)", got, tc.recovered, again)
			}
			if tc.recovered {
				for i := 1; i <= tc.missed; i++ {
					if arr := c2.ReadEvent(); string(arr[1]) != fmt.Sprint(i) {
						t.Fatalf("replayed %s, want %d", arr, i)
					}
				}
			}
			// Nothing wrong is replayed: the next packet is a new one.
			rs.ns.Emit("e", "new")
			if arr := c2.ReadEvent(); string(arr[1]) != `"new"` {
				t.Fatalf("got %s", arr)
			}
		})
	}
}

func TestRecoveryAuthorizer(t *testing.T) {
	srv, ts := newTestServer(t, Options{Recovery: RecoveryOptions{MaxDisconnection: time.Minute, MaxPackets: 2}})
	ns := srv.Of("/")
	reqs := make(chan *ConnectRequest, 4)
	decide := make(chan error, 4)
	ns.Authorize(func(ctx context.Context, req *ConnectRequest) (*Admission, error) {
		reqs <- req
		if err := <-decide; err != nil {
			return nil, err
		}
		if req.Recovered {
			return nil, nil
		}
		return &Admission{Rooms: []string{"r"}, Data: "d"}, nil
	})
	disconnected := make(chan string, 4)
	connected := make(chan *Socket, 4)
	ns.OnConnect(func(s *Socket) {
		s.OnDisconnect(func(r string) { disconnected <- r })
		connected <- s
	})
	session := func() (map[string]string, string) {
		c := socketiotest.Dial(t, ts.URL, "")
		c.Write("40")
		if r := recv(t, reqs); r.Recovered {
			t.Fatal("a new client recovered")
		}
		decide <- nil
		reply := c.Read()
		var body map[string]string
		_ = json.Unmarshal([]byte(strings.TrimPrefix(reply, "40")), &body)
		recv(t, connected)
		ns.To("r").Emit("e", 0)
		off := socketiotest.Offset(t, c.ReadEvent())
		c.Conn.Close()
		recv(t, disconnected)
		return body, off
	}

	// The authorizer sees the session it is asked to restore, and may refuse it: then it is gone.
	body, off := session()
	auth := fmt.Sprintf(`{"pid":%q,"offset":%q}`, body["pid"], off)
	c := socketiotest.Dial(t, ts.URL, "")
	c.Write("40" + auth)
	r := recv(t, reqs)
	if !r.Recovered || r.SocketID != body["sid"] || !slices.Contains(r.Rooms, "r") || r.Data != "d" || string(r.Handshake.Auth) != "{}" {
		t.Fatalf("request %+v auth %s", r, r.Handshake.Auth)
	}
	decide <- &ConnectError{Message: "no"}
	c.Expect(`44{"message":"no"}`)
	c.Write("40" + auth)
	if recv(t, reqs).Recovered {
		t.Fatal("a refused session was kept")
	}
	decide <- nil
	recv(t, connected)

	// More packets stored for it while the authorizer decides than the store keeps: the socket
	// keeps its id, rooms and data, but gets a new pid and no replay (recovered false).
	body, off = session()
	c = socketiotest.Dial(t, ts.URL, "")
	c.Write("40" + fmt.Sprintf(`{"pid":%q,"offset":%q}`, body["pid"], off))
	if !recv(t, reqs).Recovered {
		t.Fatal("not recovering")
	}
	for i := 1; i <= 3; i++ {
		ns.To("r").Emit("e", i)
	}
	decide <- nil
	reply := c.Read()
	var again map[string]string
	if !strings.HasPrefix(reply, "40{") || json.Unmarshal([]byte(reply[2:]), &again) != nil {
		t.Fatalf("CONNECT answer %q", reply)
	}
	if again["sid"] != body["sid"] || again["pid"] == "" || again["pid"] == body["pid"] {
		t.Fatalf("answer %v after an overflow, was %v", again, body)
	}
	s := recv(t, connected)
	if s.Recovered() || !slices.Contains(s.Rooms(), "r") || s.Data() != "d" {
		t.Fatalf("recovered %v rooms %v data %v", s.Recovered(), s.Rooms(), s.Data())
	}
	ns.To("r").Emit("e", "new")
	if arr := c.ReadEvent(); string(arr[1]) != `"new"` {
		t.Fatalf("got %s: nothing may be replayed after an overflow", arr)
	}
}

// TestRecoveryUnderLoad cuts and restores a client again and again while events are
// broadcast to its room: each cut comes in the middle of a burst, and the next burst runs while
// the client reconnects. Across all its connections it must see every event exactly once, in
// order.
func TestRecoveryUnderLoad(t *testing.T) {
	const (
		cycles = 20
		burst  = 300 // events per burst; two bursts stay well within the store and the send queue
	)
	rs := newRecoveryServer(t, RecoveryOptions{MaxDisconnection: time.Minute})
	c := socketiotest.Dial(t, rs.url, "")
	first := c.ConnectFields("")
	recv(t, rs.connected)

	// One broadcaster, so that the events are numbered in the order they are stored.
	bursts := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		for k := range bursts {
			for range k {
				n++
				rs.ns.To("r").Emit("n", n)
			}
		}
	}()
	var closeOnce sync.Once
	stop := func() { closeOnce.Do(func() { close(bursts) }); <-done }
	t.Cleanup(stop)
	requested := 0
	ask := func(k int) { // waits for the burst before to end
		requested += k
		select {
		case bursts <- k:
		case <-time.After(5 * time.Second):
			t.Fatal("the broadcaster is stuck")
		}
	}

	last := 0
	var offset string
	read := func(c *socketiotest.Client) {
		t.Helper()
		arr := c.ReadEvent()
		var n int
		_ = json.Unmarshal(arr[1], &n)
		if n != last+1 {
			t.Fatalf("got %d after %d", n, last)
		}
		last, offset = n, socketiotest.Offset(t, arr)
	}
	for cycle := range cycles {
		ask(burst)
		for last < requested-burst/2 {
			read(c)
		}
		rs.cut(t, c)
		ask(burst)
		c = socketiotest.Dial(t, rs.url, "")
		again := c.ConnectFields(fmt.Sprintf(`{"pid":%q,"offset":%q}`, first["pid"], offset))
		if again["sid"] != first["sid"] || !recv(t, rs.connected).Recovered() {
			t.Fatalf("cycle %d: not recovered: %v", cycle, again)
		}
	}
	stop()
	for last < requested {
		read(c)
	}
}

func TestSplitRecoveryAuth(t *testing.T) {
	for _, tc := range []struct{ in, auth, pid, offset string }{
		{``, ``, "", ""},
		{`{"token":"<a&b>"}`, `{"token":"<a&b>"}`, "", ""},
		{`{"pid":"p","offset":"o"}`, `{}`, "p", "o"},
		{`{"token":"<a&b>","pid":"p","offset":"o","n":[1, 2]}`, `{"n":[1,2],"token":"<a&b>"}`, "p", "o"},
		{`{"pid":1,"offset":"o"}`, `{}`, "", "o"},
	} {
		auth, pid, offset := splitRecoveryAuth(json.RawMessage(tc.in))
		if string(auth) != tc.auth || pid != tc.pid || offset != tc.offset {
			t.Errorf("%s: auth %s pid %q offset %q, want %s %q %q", tc.in, auth, pid, offset, tc.auth, tc.pid, tc.offset)
		}
	}
}

func TestAppendOffset(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`["e"]`, `["e","o"]`},
		{`["e",1,{"a":[2]}]`, `["e",1,{"a":[2]},"o"]`},
		{`["e",{"_placeholder":true,"num":0}] `, `["e",{"_placeholder":true,"num":0},"o"]`},
	} {
		if got := appendOffset(json.RawMessage(tc.in), "o"); string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, got, tc.want)
		}
	}
}
