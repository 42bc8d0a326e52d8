package main

// The real socket.io-client 2.x (clients.js --v2) through the binary with allow_eio3: every
// path a 4.x client has, webhooks, reply actions, the REST API, rooms, acks, binary and
// namespaces, beside 4.x clients.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// allowEIO3 turns on 2.x clients.
const allowEIO3 = "SIOBRIDGE_SOCKETIO_ALLOW_EIO3=true"

// chatReply is examples/chat's app: sendMsg is emitted as reviceMsg to everyone but the sender
// and acknowledged "sent"; joinRoom joins the rooms it names.
func chatReply(_ context.Context, d delivery) (int, any) {
	if d.Kind != "event" {
		return http.StatusOK, nil
	}
	switch d.Payload.Event {
	case "sendMsg":
		return http.StatusOK, map[string]any{
			"emit": []any{map[string]any{"event": "reviceMsg", "args": d.Payload.Args, "except": []string{d.Payload.Socket.ID}}},
			"ack":  []any{"sent"},
		}
	case "joinRoom":
		var rooms []string
		_ = json.Unmarshal(d.Payload.Args, &rooms)
		return http.StatusOK, map[string]any{"join": rooms, "ack": []any{"joined"}}
	case "toRoom":
		// ["room", args...]: emitted to the room.
		var args []json.RawMessage
		_ = json.Unmarshal(d.Payload.Args, &args)
		var room string
		if len(args) > 0 {
			_ = json.Unmarshal(args[0], &room)
		}
		return http.StatusOK, map[string]any{"emit": []any{map[string]any{"event": "roomMsg", "args": args[1:], "to": []string{room}}}}
	}
	return http.StatusOK, nil
}

// checkV2Hook returns the first event webhook of event from c, checking that it names c by
// the id c reports, with the handshake query EIO eio ("3" for 2.x).
func checkV2Hook(t *testing.T, a *app, c *sioClient, event, eio string) delivery {
	t.Helper()
	d := a.waitEvent(t, c.id, event)
	if h := d.Payload.Socket.Handshake; h == nil || h.Query["EIO"] != eio {
		t.Errorf("the %s webhook of %s: handshake %+v, want EIO %s", event, c.id, h, eio)
	}
	return d
}

// TestE2ELegacyChat is the seed chat between a 2.x client and a 4.x one, both ways, through
// the app's reply emit, over each transport setup of the 2.x client.
func TestE2ELegacyChat(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(chatReply)
	b := startBridge(t, a, allowEIO3)
	nc2, nc4 := startNodeV2(t), startNode(t)

	for _, tc := range []struct {
		name       string
		transports []string
		final      string // the 2.x client's transport at the end; "" when it may be either
	}{
		{"default transports", nil, ""},
		{"websocket only", []string{"websocket"}, "websocket"},
		{"polling only", []string{"polling"}, "polling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{}
			if tc.transports != nil {
				opts["transports"] = tc.transports
			}
			v2 := nc2.connect(t, b.url(), opts)
			v4 := nc4.connect(t, b.url(), nil)
			if v2.id != v2.engine {
				t.Errorf("the 2.x client's socket.id %q, want its Engine.IO id %q", v2.id, v2.engine)
			}

			ref := v2.emitAck(t, "sendMsg", "hi v4", map[string]any{"n": 1, "s": "é☃😀"})
			assertJSON(t, "v4's reviceMsg", v4.expectEvent(t, "reviceMsg").Args, `["hi v4",{"n":1,"s":"é☃😀"}]`)
			assertJSON(t, "v2's ack", v2.expectAck(t, ref).Args, `["sent"]`)
			ref = v4.emitAck(t, "sendMsg", "hi v2", []any{"é☃😀", nil, true})
			got := v2.expectEvent(t, "reviceMsg")
			assertJSON(t, "v2's reviceMsg", got.Args, `["hi v2",["é☃😀",null,true]]`)
			if tc.final != "" && got.Transport != tc.final {
				t.Errorf("v2 received over %q, want %s", got.Transport, tc.final)
			}
			assertJSON(t, "v4's ack", v4.expectAck(t, ref).Args, `["sent"]`)
			// Neither got its own message back.
			b.marker(t, v2, v4)

			d := checkV2Hook(t, a, v2, "sendMsg", "3")
			if p := d.Payload; p.Namespace != "/" || p.Ack == nil || !*p.Ack || !slices.Contains(p.Socket.Rooms, v2.id) {
				t.Errorf("v2's sendMsg webhook: namespace %q, ack %v, rooms %q", p.Namespace, p.Ack, p.Socket.Rooms)
			}
			assertJSON(t, "v2's sendMsg webhook args", d.Payload.Args, `["hi v4",{"n":1,"s":"é☃😀"}]`)
			checkV2Hook(t, a, v4, "sendMsg", "4")

			v2.close(t)
			d = a.waitFor(t, "v2's disconnect webhook", func(d delivery) bool {
				return d.Kind == "disconnect" && d.Payload.Socket.ID == v2.id
			})
			if d.Payload.Reason != "client namespace disconnect" {
				t.Errorf("v2's disconnect reason %q, want client namespace disconnect", d.Payload.Reason)
			}
			v4.close(t)
		})
	}
}

// TestE2ELegacyRooms: 2.x clients join a room through a reply's join and through POST /join;
// the room's emits, from the API and from a reply to a 4.x client's event, reach them and
// nobody else.
func TestE2ELegacyRooms(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(chatReply)
	b := startBridge(t, a, allowEIO3)
	nc2, nc4 := startNodeV2(t), startNode(t)
	byReply := nc2.connect(t, b.url(), map[string]any{"transports": []string{"websocket"}})
	byAPI := nc2.connect(t, b.url(), map[string]any{"transports": []string{"polling"}})
	v4 := nc4.connect(t, b.url(), nil)

	assertJSON(t, "joinRoom ack", byReply.expectAck(t, byReply.emitAck(t, "joinRoom", "r")).Args, `["joined"]`)
	b.countCall(t, "/join", map[string]any{"to": []string{byAPI.id}, "rooms": []string{"r"}}, 1)
	members := b.sockets(t, "r")
	if len(members) != 2 || members[byReply.id].ID == "" || members[byAPI.id].ID == "" {
		t.Errorf("GET /sockets?room=r: %v, want %s and %s", members, byReply.id, byAPI.id)
	}

	b.emit(t, map[string]any{"event": "roomMsg", "args": []any{"from the API"}, "to": []string{"r"}}, 2)
	v4.emit(t, "toRoom", "r", "from v4", map[string]any{"k": []any{1}})
	for _, c := range []*sioClient{byReply, byAPI} {
		assertJSON(t, "roomMsg from the API", c.expectEvent(t, "roomMsg").Args, `["from the API"]`)
		assertJSON(t, "roomMsg from v4's reply", c.expectEvent(t, "roomMsg").Args, `["from v4",{"k":[1]}]`)
	}
	b.marker(t, byReply, byAPI, v4) // v4 is not in r
	if d := checkV2Hook(t, a, byReply, "joinRoom", "3"); !jsonEqual(d.Payload.Args, `["r"]`) {
		t.Errorf("joinRoom webhook args %s", d.Payload.Args)
	}
}

// TestE2ELegacyAcksAndBinary: a 2.x client's acks both ways (the app answers through its
// reply; POST /emit with ack_timeout_ms collects the client's answer) and binary both ways
// (its Buffers reach the app as {"$binary":...}, the app's {"$binary":...} arrive as Buffers),
// over WebSocket and polling.
func TestE2ELegacyAcksAndBinary(t *testing.T) {
	t.Parallel()
	const nested = `{"nested":{"list":[1,"two",{"three":3.5}],"none":null,"yes":true,"s":"é☃😀 \"q\""}}`
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	b64 := base64.StdEncoding.EncodeToString
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		if d.Payload.Event == "ask" {
			return http.StatusOK, `{"ack":[` + nested + `,42,{"$binary":"AAH/"}]}`
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, allowEIO3)
	nc := startNodeV2(t)

	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			c := nc.connect(t, b.url(), map[string]any{"transports": []string{transport}})

			ack := c.expectAck(t, c.emitAck(t, "ask", "question?", bin([]byte{7})))
			assertJSON(t, "the app's ack", ack.Args, `[`+nested+`,42,{"$bin":"AAH/","$type":"Buffer"}]`)
			d := checkV2Hook(t, a, c, "ask", "3")
			if d.Payload.Ack == nil || !*d.Payload.Ack {
				t.Errorf(`"ask" webhook: ack %v, want true`, d.Payload.Ack)
			}
			assertJSON(t, "ask webhook args", d.Payload.Args, `["question?",{"$binary":"Bw=="}]`)

			c.emit(t, "upload", "photo.bin", bin(all), map[string]any{"nested": []any{bin([]byte{1, 2, 3})}, "empty": bin(nil)})
			d = a.waitEvent(t, c.id, "upload")
			assertJSON(t, "upload webhook args", d.Payload.Args,
				fmt.Sprintf(`["photo.bin",{"$binary":%q},{"nested":[{"$binary":"AQID"}],"empty":{"$binary":""}}]`, b64(all)))

			b.emit(t, map[string]any{"event": "file", "to": []string{c.id}, "args": []any{map[string]any{
				"name": "f", "data": map[string]string{"$binary": b64(all)}, "parts": []any{map[string]string{"$binary": "AAE="}, "text"},
			}}}, 1)
			assertJSON(t, "file args", c.expectEvent(t, "file").Args, fmt.Sprintf(
				`[{"name":"f","data":{"$bin":%q,"$type":"Buffer"},"parts":[{"$bin":"AAE=","$type":"Buffer"},"text"]}]`, b64(all)))

			done := make(chan response, 1)
			go func() {
				res, err := b.fetch(http.MethodPost, "http://"+b.API+"/emit",
					map[string]any{"event": "sendBack", "args": []any{map[string]string{"$binary": "AQ=="}}, "to": []string{c.id}, "ack_timeout_ms": e2eWait.Milliseconds()}, b.authHeader())
				if err != nil {
					res = response{body: []byte(err.Error())}
				}
				done <- res
			}()
			q := c.expectEvent(t, "sendBack")
			assertJSON(t, "sendBack args", q.Args, `[{"$bin":"AQ==","$type":"Buffer"}]`)
			if q.AckRef == 0 {
				t.Fatalf("sendBack without an ack callback: %s", q.line)
			}
			c.answer(t, q.AckRef, "got", bin([]byte{255, 0}), map[string]any{"deep": bin([]byte{1})})
			select {
			case res := <-done:
				if res.status != http.StatusOK {
					t.Fatalf("POST /emit: %d %s", res.status, res.body)
				}
				assertJSON(t, "the client's binary ack", res.body, fmt.Sprintf(
					`{"sockets":1,"acks":[{"socket":%q,"args":["got",{"$binary":"/wA="},{"deep":{"$binary":"AQ=="}}]}],"timed_out":[]}`, c.id))
			case <-time.After(e2eWait + time.Second):
				t.Fatal("POST /emit with ack_timeout_ms did not answer")
			}
			c.close(t)
		})
	}
}

// TestE2ELegacyNamespace: a 2.x client in /chat with the query token=abc: the connect webhook
// shows the query as handshake.auth, EIO "3", and the socket id "/chat#<Engine.IO id>" that
// the client reports as socket.id; a bad token is refused with the app's 401 message, which
// the 2.x client gets as its "error" event.
func TestE2ELegacyNamespace(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	a.setReply(func(_ context.Context, d delivery) (int, any) {
		if d.Kind != "connect" || d.Payload.Namespace != "/chat" {
			return chatReply(context.Background(), d)
		}
		var auth struct {
			Token string `json:"token"`
		}
		if h := d.Payload.Socket.Handshake; h != nil {
			_ = json.Unmarshal(h.Auth, &auth)
		}
		if auth.Token != "abc" {
			return http.StatusUnauthorized, map[string]any{"message": "invalid token"}
		}
		return http.StatusOK, nil
	})
	b := startBridge(t, a, allowEIO3, "SIOBRIDGE_SOCKETIO_NAMESPACES=/,/chat")
	nc2, nc4 := startNodeV2(t), startNode(t)

	connectHook := func(t *testing.T, nsp, id string) delivery {
		t.Helper()
		return a.waitFor(t, fmt.Sprintf("the connect webhook of %s in %s", id, nsp), func(d delivery) bool {
			return d.Kind == "connect" && d.Status != 0 && d.Payload.Namespace == nsp && d.Payload.Socket.ID == id
		})
	}

	t.Run("query token", func(t *testing.T) {
		c := nc2.connect(t, b.url()+"/chat", map[string]any{"query": map[string]any{"token": "abc"}})
		if c.engine == "" || c.id != "/chat#"+c.engine {
			t.Fatalf("the client's socket.id %q, want /chat#<its Engine.IO id %q>", c.id, c.engine)
		}
		d := connectHook(t, "/chat", c.id)
		h := d.Payload.Socket.Handshake
		if h == nil {
			t.Fatal("the connect webhook has no handshake")
		}
		if !jsonEqual(h.Auth, `{"token":"abc"}`) || h.Query["EIO"] != "3" || d.Status != http.StatusOK {
			t.Errorf("connect webhook of %s: auth %s, query %v, answered %d; want {\"token\":\"abc\"}, EIO 3, 200", c.id, h.Auth, h.Query, d.Status)
		}
		// 2.x is in "/" too, under its Engine.IO id, from the start.
		if d := connectHook(t, "/", c.engine); d.Payload.Socket.Handshake.Query["EIO"] != "3" {
			t.Errorf("the / connect webhook's query %v", d.Payload.Socket.Handshake.Query)
		}
		if s := b.socketsIn(t, "/chat", ""); s[c.id].ID != c.id {
			t.Errorf("GET /sockets?namespace=/chat: %v, want %s", s, c.id)
		}

		// The chat in /chat with a 4.x client.
		v4 := nc4.connect(t, b.url()+"/chat", map[string]any{"auth": map[string]any{"token": "abc"}})
		ref := c.emitAck(t, "sendMsg", "in /chat")
		assertJSON(t, "v4's reviceMsg", v4.expectEvent(t, "reviceMsg").Args, `["in /chat"]`)
		assertJSON(t, "v2's ack", c.expectAck(t, ref).Args, `["sent"]`)
		if d := a.waitEvent(t, c.id, "sendMsg"); d.Payload.Namespace != "/chat" {
			t.Errorf("sendMsg webhook in %q", d.Payload.Namespace)
		}
		b.emit(t, map[string]any{"event": "news", "namespace": "/chat", "to": []string{c.id}, "args": []any{1}}, 1)
		assertJSON(t, "news", c.expectEvent(t, "news").Args, `[1]`)
		b.marker(t, c, v4)
		c.close(t)
		v4.close(t)
	})

	t.Run("refused", func(t *testing.T) {
		c := nc2.open(t, b.url()+"/chat", map[string]any{"query": map[string]any{"token": "bad"}})
		if m := c.next(t); m.Type != "error" || !jsonEqual(m.Data, `"invalid token"`) {
			t.Fatalf("got %s, want the error event with the app's message \"invalid token\"", m.line)
		}
		d := a.waitFor(t, "the refused connect webhook", func(d delivery) bool {
			return d.Kind == "connect" && d.Payload.Namespace == "/chat" && d.Status == http.StatusUnauthorized
		})
		if h := d.Payload.Socket.Handshake; h == nil || !jsonEqual(h.Auth, `{"token":"bad"}`) {
			t.Errorf("the refused connect webhook's handshake %+v", h)
		}
		if s := b.socketsIn(t, "/chat", ""); len(s) != 0 {
			t.Errorf("GET /sockets?namespace=/chat after a refusal: %v, want none", s)
		}
	})
}
