package webhook

import (
	"encoding/json"
	"strconv"

	"github.com/siobridge/siobridge/internal/jsonw"
	"github.com/siobridge/siobridge/socketio"
)

// The event webhook is the one sent for every message a client emits, so its body is written
// by hand rather than by encoding/json: the same JSON value as json.Marshal of its Payload,
// field for field, with the socket's handshake encoded once per socket, not once per event.
// Strings are written by internal/jsonw (as encoding/json writes them, without HTML
// escaping). Raw JSON values (the client's arguments, which the Socket.IO decoder checked, the
// socket's data and handshake) go in as they are, without compacting or HTML-escaping them: a
// second pass over them for every event would change nothing but whitespace.

// eventBody returns the body of the event webhook with delivery id for an event on s, whose
// state is st.
func (b *Bridge) eventBody(st *socketState, id string, s *socketio.Socket, name string, args json.RawMessage, wantsAck bool) []byte {
	return appendEventBody(nil, id, s.Namespace().Name(), s.ID(), s.Rooms(), socketData(s.Data()),
		st.handshakeJSON(s, b.opts.HandshakeHeaders), name, args, wantsAck)
}

// handshakeJSON is s's handshake as JSON, with the headers that headers shows, encoded by the
// first event and kept: a handshake does not change once the socket is connected. A socket
// that never emits never pays for it.
func (st *socketState) handshakeJSON(s *socketio.Socket, headers *HeaderFilter) json.RawMessage {
	if p := st.handshake.Load(); p != nil {
		return *p
	}
	j, err := json.Marshal(headers.Apply(s.Handshake()))
	if err != nil { // not expected: the handshake holds only strings, raw JSON and numbers
		j = []byte("null")
	}
	raw := json.RawMessage(j)
	st.handshake.Store(&raw)
	return raw
}

// appendEventBody appends the JSON of Payload{ID: delivery, Type: KindEvent, ...} with those
// fields; socket is the socket's id. data, handshake and args must be valid JSON (data is
// replaced by null otherwise, as it comes from the app); args is left out when empty, as
// omitempty does.
func appendEventBody(buf []byte, delivery, namespace, socket string, rooms []string, data, handshake json.RawMessage, event string, args json.RawMessage, wantsAck bool) []byte {
	if buf == nil {
		n := 128 + len(delivery) + len(namespace) + len(socket) + len(data) + len(handshake) + len(event) + len(args)
		for _, r := range rooms {
			n += len(r) + 3
		}
		buf = make([]byte, 0, n)
	}
	buf = append(buf, `{"id":`...)
	buf = jsonw.AppendString(buf, delivery)
	buf = append(buf, `,"type":"event","namespace":`...)
	buf = jsonw.AppendString(buf, namespace)
	buf = append(buf, `,"socket":{"id":`...)
	buf = jsonw.AppendString(buf, socket)
	buf = append(buf, `,"rooms":[`...)
	for i, r := range rooms {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonw.AppendString(buf, r)
	}
	buf = append(buf, `],"data":`...)
	if len(data) == 0 || !json.Valid(data) {
		data = json.RawMessage("null")
	}
	buf = append(buf, data...)
	buf = append(buf, `,"handshake":`...)
	if len(handshake) == 0 {
		handshake = json.RawMessage("null")
	}
	buf = append(buf, handshake...)
	buf = append(buf, `},"event":`...)
	buf = jsonw.AppendString(buf, event)
	if len(args) > 0 {
		buf = append(buf, `,"args":`...)
		buf = append(buf, args...)
	}
	buf = append(buf, `,"ack":`...)
	buf = strconv.AppendBool(buf, wantsAck)
	return append(buf, '}')
}
