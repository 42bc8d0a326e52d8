package socketio_test

// The legacy-client scenarios of testdata/interop/client2.js (the real socket.io-client 2.5.0,
// Engine.IO v3) against the Go server with Engine.AllowEIO3: the same scenarios that
// interop_v2ref_test.go checks against Node's server with allowEIO3, and on "/" the same
// handlers as the 4.x interop tests (coreHandlers).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/socketio"
)

// legacyOptions accepts 2.x clients beside 4.x ones, with the given heartbeat.
func legacyOptions(pingInterval, pingTimeout time.Duration) socketio.Options {
	return socketio.Options{Engine: engineio.Options{AllowEIO3: true, PingInterval: pingInterval, PingTimeout: pingTimeout}}
}

// startClient2 runs client2.js URL ARGS... (see startJS).
func startClient2(t *testing.T, url string, args ...string) *testkit.Process {
	t.Helper()
	testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client-v2")
	return startJS(t, "client2.js", url, args...)
}

// legacyChatHandlers are v2reference.js's "/chat": a connect whose token (for a 2.x client, its
// namespace query) is not "abc" is refused with "not allowed"; whoami acks {nsp, id, auth, query}
// and echo acks its arguments.
func legacyChatHandlers(s *interopServer) {
	ns := s.Srv.Of("/chat")
	ns.Authorize(func(_ context.Context, req *socketio.ConnectRequest) (*socketio.Admission, error) {
		s.Rec.add(record{Kind: "auth", NS: req.Namespace, SocketID: req.SocketID, Auth: req.Handshake.Auth})
		var a struct{ Token string }
		if err := json.Unmarshal(req.Handshake.Auth, &a); err != nil || a.Token != "abc" {
			return nil, &socketio.ConnectError{Message: "not allowed"}
		}
		return &socketio.Admission{}, nil
	})
	ns.OnConnect(func(sock *socketio.Socket) {
		s.recordConnect(sock)
		sock.On("whoami", func(e *socketio.Event) {
			s.recordEvent(e)
			hs := sock.Handshake()
			_ = e.Ack(map[string]any{"nsp": ns.Name(), "id": sock.ID(), "auth": hs.Auth, "query": hs.Query})
		})
		sock.On("echo", func(e *socketio.Event) {
			s.recordEvent(e)
			_ = e.AckRaw(e.Args)
		})
	})
}

// legacyConnect is the server's one connect record, which must be the 2.x client's: its id the
// client's socket.id, over transport (when not ""), with EIO 3 in its handshake.
func legacyConnect(t *testing.T, srv *interopServer, clientID, transport string) record {
	t.Helper()
	recs := srv.Rec.waitFor(t, nil, "the connect", countRecords("connect", "", 1))
	conns := filterRecords(recs, "connect", "")
	if len(conns) != 1 {
		t.Fatalf("server saw %d connections, want 1:\n%s", len(conns), dumpRecords(recs))
	}
	c := conns[0]
	if c.SocketID != clientID {
		t.Errorf("socket id: server %q, client %q", c.SocketID, clientID)
	}
	if transport != "" && c.Transport != transport {
		t.Errorf("server admitted the socket over %s, want %s", c.Transport, transport)
	}
	sock := srv.Srv.Of(c.NS).Socket(c.SocketID)
	if sock != nil && (sock.Protocol() != 3 || sock.Handshake().Query["EIO"] != "3") {
		t.Errorf("socket %s: protocol %d, handshake EIO %q; want 3", c.SocketID, sock.Protocol(), sock.Handshake().Query["EIO"])
	}
	return c
}

// TestInteropV2Core runs client2.js's core scenario (JSON, binary and acks both ways on "/")
// over each transport setup of socket.io-client 2.5.0.
func TestInteropV2Core(t *testing.T) {
	for _, tc := range []struct {
		mode string
		// connect is the transport the socket is admitted over ("" when it may be either);
		// final the one it ends on.
		connect, final string
	}{
		{"default", "", "websocket"},
		{"websocket", "websocket", "websocket"},
		{"polling", "polling", "polling"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			// Heartbeats run during the exchange.
			srv, cleanup := startInteropServer(t, legacyOptions(300*time.Millisecond, 5*time.Second), coreHandlers)
			defer cleanup()
			steps := finish(t, startClient2(t, srv.URL, "core", tc.mode))

			c := steps["connect"]
			if c.str("id") == "" || c.str("id") != c.str("engine") {
				t.Errorf("connect line %v: want the socket id to be the Engine.IO session id", c)
			}
			if tc.connect != "" && c.str("transport") != tc.connect {
				t.Errorf("client connected over %q, want %s", c.str("transport"), tc.connect)
			}
			checkEqual(t, "json the client got", steps["json"]["value"], []any{interopNested(), interopTricky, 42})
			checkEqual(t, "bin the client got", steps["bin"]["value"], []any{interopBuf1, interopNestedBin(), interopAll256})
			checkEqual(t, "ack the client got", steps["ack"]["value"], []any{"ok", interopNested(), []byte{1, 2, 3}})
			checkEqual(t, "echo the client got", steps["echo"]["value"],
				[]any{map[string]any{"x": []byte{9, 9}, "y": []any{interopTricky, nil}}, "s", interopBuf1})
			checkEqual(t, "answered", steps["answered"]["value"], []any{map[string]any{"answer": 42, "q": interopQuestion}, []byte{4, 2}})
			if _, ok := steps["upgrade"]; ok != (tc.mode == "default") {
				t.Errorf("upgrade step printed: %v, want %v", ok, tc.mode == "default")
			}
			if f := steps["final"].str("transport"); f != tc.final {
				t.Errorf("client's final transport %q, want %s", f, tc.final)
			}

			conn := legacyConnect(t, srv, c.str("id"), tc.connect)
			if conn.NS != "/" || string(conn.Auth) != "{}" {
				t.Errorf("connect in %q with auth %s, want / and {}", conn.NS, conn.Auth)
			}
			recs := srv.Rec.waitFor(t, nil, "the answered ack and the disconnect", func(recs []record) bool {
				return len(filterRecords(recs, "ackResult", "")) == 1 && len(filterRecords(recs, "disconnect", "")) == 1
			})
			var names []string
			for _, e := range filterRecords(recs, "event", "") {
				names = append(names, e.Name)
				if e.Name != "json" && e.Transport != tc.final {
					t.Errorf("event %s arrived over %s, want %s", e.Name, e.Transport, tc.final)
				}
			}
			if got, want := strings.Join(names, " "), "json bin ack echo ask"; got != want {
				t.Fatalf("server got events %s, want %s", got, want)
			}
			bin := filterRecords(recs, "event", "bin")[0]
			checkEqual(t, "bin args the server got", decodeArgs(t, "bin", bin.Args), []any{interopBuf1, interopAll256, interopNestedBin()})
			if n := len(bin.Args.Attachments); n != 5 {
				t.Errorf("bin event has %d attachments, want 5", n)
			}
			ack := filterRecords(recs, "event", "ack")[0]
			if !ack.WantsAck {
				t.Error("ack event: WantsAck false")
			}
			checkEqual(t, "ack args the server got", decodeArgs(t, "ack", ack.Args), []any{interopNested(), interopBuf1})
			ar := filterRecords(recs, "ackResult", "")[0]
			if ar.Err != nil {
				t.Fatalf("EmitWithAck: %v", ar.Err)
			}
			checkEqual(t, "the client's answer to EmitWithAck", decodeArgs(t, "question ack", ar.Args),
				[]any{map[string]any{"answer": 42, "q": interopQuestion}, []byte{4, 2}})
			if r := filterRecords(recs, "disconnect", "")[0].Reason; r != socketio.ReasonClientNamespaceDisconnect {
				t.Errorf("disconnect reason %q, want %q", r, socketio.ReasonClientNamespaceDisconnect)
			}
		})
	}
}

// TestInteropV2Namespace: a 2.x client connects to "/chat" with the query token=abc, which it
// sends in its CONNECT packet: the server sees it as the auth payload, and the socket id is
// "/chat#<Engine.IO id>", what the client computes as socket.id.
func TestInteropV2Namespace(t *testing.T) {
	for _, mode := range []string{"default", "websocket", "polling"} {
		t.Run(mode, func(t *testing.T) {
			srv, cleanup := startInteropServer(t, legacyOptions(0, 0), func(s *interopServer) {
				s.Srv.Of("/").OnConnect(s.recordConnect)
				legacyChatHandlers(s)
			})
			defer cleanup()
			steps := finish(t, startClient2(t, srv.URL, "namespace", mode))

			c := steps["connect"]
			if c.str("id") != "/chat#"+c.str("engine") {
				t.Errorf("client's socket.id %q, want /chat#<its session id %q>", c.str("id"), c.str("engine"))
			}
			checkEqual(t, "echo in /chat", steps["echo"]["value"], []any{"in /chat", []byte{7}})
			recs := srv.Rec.waitFor(t, nil, "both connects and the whoami", func(recs []record) bool {
				return len(filterRecords(recs, "connect", "")) == 2 && len(filterRecords(recs, "event", "whoami")) == 1
			})
			var chat record
			for _, r := range filterRecords(recs, "connect", "") {
				switch r.NS {
				case "/chat":
					chat = r
				case "/":
					// 2.x is in "/" as soon as its connection opens.
					if r.SocketID != c.str("engine") {
						t.Errorf("the / socket %q, want the Engine.IO id %q", r.SocketID, c.str("engine"))
					}
				}
			}
			if chat.SocketID != c.str("id") {
				t.Errorf("the server's /chat socket %q, the client's %q:\n%s", chat.SocketID, c.str("id"), dumpRecords(recs))
			}
			if string(chat.Auth) != `{"token":"abc"}` {
				t.Errorf("handshake auth %s, want the CONNECT's query {\"token\":\"abc\"}", chat.Auth)
			}
			who := steps["whoami"]["value"].(map[string]any)
			if who["id"] != c.str("id") || who["nsp"] != "/chat" {
				t.Errorf("whoami %v", who)
			}
			if q, _ := who["query"].(map[string]any); q["EIO"] != "3" || q["token"] != "abc" {
				t.Errorf("handshake query %v, want EIO 3 and the token", who["query"])
			}
		})
	}
}

// TestInteropV2Refused: a 2.x client refused by the authorizer gets the "error" event with the
// server's message, and no socket is made.
func TestInteropV2Refused(t *testing.T) {
	srv, cleanup := startInteropServer(t, legacyOptions(0, 0), func(s *interopServer) {
		s.Srv.Of("/").OnConnect(s.recordConnect)
		legacyChatHandlers(s)
	})
	defer cleanup()
	steps := finish(t, startClient2(t, srv.URL, "refused"))
	if got := jsonOf(t, steps["refused"]); got != `{"connected":false,"error":"not allowed","step":"refused"}` {
		t.Errorf("refused line %s: want the error event with the server's message", got)
	}
	recs := srv.Rec.waitFor(t, nil, "the authorizer's call", countRecords("auth", "", 1))
	if a := filterRecords(recs, "auth", "")[0]; string(a.Auth) != `{"token":"bad"}` || a.NS != "/chat" {
		t.Errorf("the authorizer saw %s in %s, want {\"token\":\"bad\"} in /chat", a.Auth, a.NS)
	}
	for _, c := range filterRecords(recs, "connect", "") {
		if c.NS == "/chat" {
			t.Errorf("a /chat socket was made: %s", c)
		}
	}
}

// TestInteropV2Heartbeat: the 2.x client pings (the server never does, in v3) and the
// connection lives on over three intervals of 300ms with a timeout of 200ms: every ping is
// answered and counted.
func TestInteropV2Heartbeat(t *testing.T) {
	const interval, timeout = 300 * time.Millisecond, 200 * time.Millisecond
	srv, cleanup := startInteropServer(t, legacyOptions(interval, timeout), func(s *interopServer) {
		s.Srv.Of("/").OnConnect(s.recordConnect)
	})
	defer cleanup()
	p := startClient2(t, srv.URL, "heartbeat", fmt.Sprint(interval.Milliseconds()), fmt.Sprint(timeout.Milliseconds()))
	steps := finish(t, p)
	h := steps["heartbeat"]
	if pongs, _ := h["pongs"].(float64); pongs < 4 || h["connected"] != true {
		t.Errorf("heartbeat line %v: want 4 pongs or more, still connected", h)
	}
	legacyConnect(t, srv, steps["connect"].str("id"), "")
	// The connection lasted until the client closed it: not a ping timeout.
	recs := srv.Rec.waitFor(t, nil, "the disconnect", countRecords("disconnect", "", 1))
	if r := filterRecords(recs, "disconnect", "")[0].Reason; r != socketio.ReasonClientNamespaceDisconnect {
		t.Errorf("disconnect reason %q, want %q", r, socketio.ReasonClientNamespaceDisconnect)
	}
}
