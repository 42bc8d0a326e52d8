package socketio

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// newLegacyServer is a server that accepts socket.io-client 2.x (Engine.IO v3) beside 4.x.
func newLegacyServer(t *testing.T, opts Options) (*Server, string, chan *Socket) {
	t.Helper()
	opts.Engine.AllowEIO3 = true
	srv, ts := newTestServer(t, opts)
	connects := make(chan *Socket, 8)
	for _, name := range []string{"/", "/chat"} {
		srv.Of(name).OnConnect(func(s *Socket) { connects <- s })
	}
	return srv, ts.URL, connects
}

// eioSID is the Engine.IO session id of c's open packet.
func eioSID(t *testing.T, c *socketiotest.Client) string {
	t.Helper()
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(c.Open), &open); err != nil || open.SID == "" {
		t.Fatalf("open packet %q: %v", c.Open, err)
	}
	return open.SID
}

// TestLegacyRootIsJoinedAtOnce: a 2.x client is in "/" as soon as its connection opens, under
// the Engine.IO id, and the CONNECT answer carries no payload.
func TestLegacyRootIsJoinedAtOnce(t *testing.T) {
	_, url, connects := newLegacyServer(t, Options{})
	c := socketiotest.DialEIO3(t, url, "", "token=q")
	c.Expect("40")
	s := recv(t, connects)
	if sid := eioSID(t, c); s.ID() != sid {
		t.Fatalf("socket id %q, want the Engine.IO id %q", s.ID(), sid)
	}
	hs := s.Handshake()
	if hs.Query["EIO"] != "3" || hs.Query["token"] != "q" || string(hs.Auth) != "{}" {
		t.Fatalf("handshake query %v auth %s", hs.Query, hs.Auth)
	}
	if s.Protocol() != 3 {
		t.Fatalf("Protocol() = %d, want 3", s.Protocol())
	}
	c.Write(`42["hi",1]`)
	if _, err := s.Namespace().Emit("back", 2); err != nil {
		t.Fatal(err)
	}
	c.Expect(`42["back",2]`)
}

// TestLegacyNamespaceQueryIsAuth: a 2.x CONNECT carries its auth as the namespace's query;
// the socket id is "/chat#<engine id>".
func TestLegacyNamespaceQueryIsAuth(t *testing.T) {
	_, url, connects := newLegacyServer(t, Options{})
	c := socketiotest.DialEIO3(t, url, "", "")
	c.Expect("40")
	recv(t, connects)
	c.Write("40/chat?token=abc&x=1&x=2,")
	c.Expect("40/chat,")
	s := recv(t, connects)
	if want := "/chat#" + eioSID(t, c); s.ID() != want {
		t.Fatalf("socket id %q, want %q", s.ID(), want)
	}
	var auth map[string]any
	if err := json.Unmarshal(s.Handshake().Auth, &auth); err != nil || auth["token"] != "abc" || len(auth["x"].([]any)) != 2 {
		t.Fatalf("auth %v, %v", auth, err)
	}
	if rooms := s.Rooms(); len(rooms) != 1 || rooms[0] != s.ID() {
		t.Fatalf("rooms %v", rooms)
	}
	c.Write(`42/chat,["in-chat"]`)
	if _, err := s.Namespace().To(s.ID()).Emit("direct", true); err != nil {
		t.Fatal(err)
	}
	c.Expect(`42/chat,["direct",true]`)
}

// TestLegacyRefusals: a refused 2.x CONNECT is an ERROR packet with the message alone, or the
// refusal's data when it has some; an unknown namespace gets Node's object.
func TestLegacyRefusals(t *testing.T) {
	srv, url, connects := newLegacyServer(t, Options{})
	srv.Of("/chat").Authorize(func(ctx context.Context, req *ConnectRequest) (*Admission, error) {
		if strings.Contains(string(req.Handshake.Auth), "data") {
			return nil, &ConnectError{Message: "no", Data: map[string]int{"code": 7}}
		}
		return nil, &ConnectError{Message: "not allowed"}
	})
	c := socketiotest.DialEIO3(t, url, "", "")
	c.Expect("40")
	recv(t, connects)
	c.Write("40/chat,")
	c.Expect(`44/chat,"not allowed"`)
	c.Write("40/chat?data=1,")
	c.Expect(`44/chat,{"code":7}`)
	c.Write("40/nope,")
	c.Expect(`44/nope,{"message":"Invalid namespace"}`)
}

// TestLegacyAndCurrentShareRooms: a 2.x and a 4.x client in one room get the same broadcast,
// binary included, and acks go both ways for the 2.x one.
func TestLegacyAndCurrentShareRooms(t *testing.T) {
	srv, url, connects := newLegacyServer(t, Options{})
	old := socketiotest.DialEIO3(t, url, "", "")
	old.Expect("40")
	so := recv(t, connects)
	cur := socketiotest.Dial(t, url, "")
	cur.Connect("/", "")
	sc := recv(t, connects)
	so.Join("room")
	sc.Join("room")
	if _, err := srv.Of("/").To("room").Emit("both", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*socketiotest.Client{old, cur} {
		c.Expect(`451-["both",{"_placeholder":true,"num":0}]`)
		c.Expect("bin:\x01\x02")
	}

	// Client to server, with an ack and an attachment.
	so.On("up", func(e *Event) { _ = e.Ack("got", len(e.Attachments)) })
	old.Write(`451-7["up",{"_placeholder":true,"num":0}]`)
	old.WriteBinary([]byte{9})
	old.Expect(`437["got",1]`)

	// Server to client, with the client's ack.
	acked := make(chan Args, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a, err := so.EmitWithAck(ctx, "ask")
		if err != nil {
			t.Error(err)
		}
		acked <- a
	}()
	msg := old.Read()
	id, ok := strings.CutPrefix(msg, "42")
	id, _, ok2 := strings.Cut(id, `["ask"]`)
	if !ok || !ok2 || id == "" {
		t.Fatalf("event with ack %q", msg)
	}
	old.Write("43" + id + `["answer"]`)
	if a := recv(t, acked); string(a.Raw) != `["answer"]` {
		t.Fatalf("ack %s", a.Raw)
	}
}

// TestLegacyIsNeverRecovered: with recovery on, a 2.x socket gets no private id and leaves
// nothing to recover.
func TestLegacyIsNeverRecovered(t *testing.T) {
	srv, url, connects := newLegacyServer(t, Options{Recovery: RecoveryOptions{MaxDisconnection: time.Minute}})
	c := socketiotest.DialEIO3(t, url, "", "")
	c.Expect("40")
	s := recv(t, connects)
	gone := make(chan string, 1)
	s.OnDisconnect(func(reason string) { gone <- reason })
	c.Conn.Close()
	if reason := recv(t, gone); reason != engineio.ReasonTransportClose {
		t.Fatalf("reason %q", reason)
	}
	if n := srv.Of("/").store.Sessions(); n != 0 {
		t.Fatalf("%d sessions kept for a 2.x client, want 0", n)
	}
}

// TestLegacyDisconnectedOnConnect: a handler may disconnect a 2.x socket in OnConnect, which
// runs as the connection opens: the client is told, and the session is gone, with nothing
// left behind (goleak checks the rest).
func TestLegacyDisconnectedOnConnect(t *testing.T) {
	srv, url, connects := newLegacyServer(t, Options{})
	srv.Of("/").OnConnect(func(s *Socket) {
		connects <- s
		s.Disconnect(true)
	})
	for _, poll := range []bool{false, true} {
		if poll {
			// The handshake's answer holds what was queued by then; one more poll the rest.
			u := url + "/socket.io/?EIO=3&transport=polling"
			got := httpGet(t, u)
			if !strings.Contains(got, "2:41") {
				var open struct {
					SID string `json:"sid"`
				}
				_, rest, _ := strings.Cut(got, ":")
				if err := json.Unmarshal([]byte(rest[1:strings.Index(rest, "}")+1]), &open); err != nil {
					t.Fatalf("polling handshake %q: %v", got, err)
				}
				got += httpGet(t, u+"&sid="+open.SID)
			}
			if !strings.Contains(got, "2:40") || !strings.Contains(got, "2:41") {
				t.Fatalf("polling: the client got %q, want the CONNECT answer and a DISCONNECT", got)
			}
		} else {
			c := socketiotest.DialEIO3(t, url, "", "")
			c.Expect("40")
			c.Expect("41")
			c.ExpectClosed()
		}
		recv(t, connects)
		testkit.Poll(t, 5*time.Second, "the session to be gone", func() bool { return srv.Engine().Len() == 0 })
	}
}

// httpGet returns the body of a GET of u that must answer 200.
func httpGet(t *testing.T, u string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q, %v", u, resp.StatusCode, b, err)
	}
	return string(b)
}
