package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

// The hand-written event body decodes to the same JSON value as json.Marshal of the Payload
// it stands for, whatever the strings hold.
func TestEventBodyMatchesPayload(t *testing.T) {
	hs := &socketio.Handshake{
		Address: "127.0.0.1",
		Headers: map[string]string{"user-agent": "Mozilla/5.0 <x> & \"y\"", "cookie": "a=b; c=d"},
		Query:   map[string]string{"EIO": "4", "transport": "websocket", "q": "\u2028\t"},
		Auth:    json.RawMessage(`{"token":"t"}`),
		Time:    "2026-11-27T03:40:00.000Z", Issued: 1795750800000, XDomain: true,
		URL: "/socket.io/?EIO=4&transport=websocket",
	}
	hsJSON, err := json.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, delivery, namespace, id, event string
		rooms                                []string
		data, args                           json.RawMessage
		ack                                  bool
	}{
		{"plain", "MZXW6YTBOI2DKNRXHA3DAMJSGM", "/", "abc123", "chat", []string{}, json.RawMessage("null"), json.RawMessage(`["hello",1,{"a":[true,null]}]`), true},
		{"escapes", "d\"\\\u2028", "/admin", "id\"\\", "é\n<script>&\u2029\x01", []string{"lobby", "room \"2\"", "\xff"}, json.RawMessage(`{"user": "bob", "n": 1.5}`), json.RawMessage(`[ "spaced" , 2 ]`), false},
		{"no args", "A", "/", "x", "ping", nil, json.RawMessage(`"s"`), nil, false},
		{"invalid data", "B", "/", "x", "ping", []string{"r"}, json.RawMessage(`{"broken"`), json.RawMessage(`[]`), true},
		{"empty data", "", "/", "x", "ping", []string{"r"}, nil, json.RawMessage(`[{"$binary":"AAE="}]`), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := appendEventBody(nil, c.delivery, c.namespace, c.id, c.rooms, c.data, hsJSON, c.event, c.args, c.ack)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			data := c.data
			if len(data) == 0 || !json.Valid(data) {
				data = json.RawMessage("null")
			}
			ack := c.ack
			want, err := json.Marshal(Payload{
				ID: c.delivery, Type: KindEvent, Namespace: c.namespace,
				Socket: SocketPayload{ID: c.id, Rooms: nonNil(c.rooms), Data: data, Handshake: hs},
				Event:  c.event, Args: c.args, Ack: &ack,
			})
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("hand-written body\n%s\nencoding/json\n%s", got, want)
			}
		})
	}
}
