package redisadapter

// This file holds the messages of @socket.io/redis-adapter: their shapes, and their
// conversion to and from socketio's packets, sockets and acks.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/siobridge/siobridge/socketio"
)

// wireOpts is a request's socket selection.
type wireOpts struct {
	Rooms  []string `json:"rooms"`
	Except []string `json:"except"`
}

func wireOptsOf(o socketio.BroadcastOptions) *wireOpts {
	return &wireOpts{Rooms: nonNil(dedupe(o.Rooms)), Except: nonNil(dedupe(o.Except))}
}

// wireRequest is a JSON request, in the Node.js adapter's field order.
type wireRequest struct {
	UID       string    `json:"uid,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Type      int       `json:"type"`
	Opts      *wireOpts `json:"opts,omitempty"`
	Rooms     []string  `json:"rooms,omitempty"`
	Close     *bool     `json:"close,omitempty"`
	// SkipSiobridge marks the SOCKETS or REMOTE_FETCH of a count (see Adapter.askForeign):
	// siobridge nodes leave it to the other servers, which ignore the field.
	SkipSiobridge bool `json:"skipSiobridge,omitempty"`
}

func jsonRequest(r wireRequest) ([]byte, error) { return json.Marshal(r) }

// optsFromWire reads a request's {rooms, except}.
func optsFromWire(v any) socketio.BroadcastOptions {
	o, _ := v.(*object)
	return socketio.BroadcastOptions{Rooms: asRooms(o.get("rooms")), Except: asRooms(o.get("except")), Local: true}
}

// decodeMessage decodes a request or a response: JSON when it starts with "{" (as the Node.js
// adapter decides), msgpack otherwise. It must be an object.
func decodeMessage(b []byte) (*object, error) {
	var v any
	var err error
	if len(b) > 0 && b[0] == '{' {
		v, err = parseArgs(b, nil)
	} else {
		v, err = decodeMsgpack(b)
	}
	if err != nil {
		return nil, err
	}
	o, ok := v.(*object)
	if !ok {
		return nil, errors.New("message is not an object")
	}
	return o, nil
}

// packetToWire gives a Socket.IO packet the shape socket.io-parser's packets have in
// Node.js: {type, data, nsp}, binary attachments back in place as Buffers. As in Node.js, an
// event is type 2 whether or not it carries binary.
func packetToWire(p *socketio.Packet) (*object, error) {
	var atts [][]byte
	typ := int64(p.Type)
	switch p.Type {
	case socketio.PacketBinaryEvent:
		atts, typ = p.Attachments, int64(socketio.PacketEvent)
	case socketio.PacketBinaryAck:
		atts, typ = p.Attachments, int64(socketio.PacketAck)
	}
	data, err := parseArgs(p.Data, atts)
	if err != nil {
		return nil, fmt.Errorf("packet data: %w", err)
	}
	o := &object{}
	o.set("type", typ)
	o.set("data", data)
	o.set("nsp", p.Namespace)
	return o, nil
}

// packetFromWire turns a packet from another node into a Socket.IO event packet of
// namespace nsp.
func packetFromWire(v any, nsp string) (*socketio.Packet, error) {
	o, ok := v.(*object)
	if !ok {
		return nil, errors.New("packet is not an object")
	}
	typ, _ := asInt(o.get("type"))
	if typ != int64(socketio.PacketEvent) && typ != int64(socketio.PacketBinaryEvent) {
		return nil, fmt.Errorf("packet type %d is not an event", typ)
	}
	args, ok := o.get("data").([]any)
	if !ok || len(args) == 0 {
		return nil, errors.New("event packet without data")
	}
	var atts [][]byte
	data, err := appendJSON(nil, args, &atts, 0)
	if err != nil {
		return nil, err
	}
	p := &socketio.Packet{Type: socketio.PacketEvent, Namespace: nsp, Data: data}
	if len(atts) > 0 {
		p.Type, p.Attachments = socketio.PacketBinaryEvent, atts
	}
	return p, nil
}

// argsFromWire turns a list of values into Socket.IO arguments.
func argsFromWire(list []any) (socketio.Args, error) {
	var atts [][]byte
	raw, err := appendJSON(nil, list, &atts, 0)
	if err != nil {
		return socketio.Args{}, err
	}
	return socketio.Args{Raw: raw, Attachments: atts}, nil
}

// rawJSON writes a decoded value as JSON (binary as placeholders, which a JSON answer never
// holds in practice).
func rawJSON(v any) json.RawMessage {
	var atts [][]byte
	b, err := appendJSON(nil, v, &atts, 0)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// socketInfoFromWire reads one socket of a REMOTE_FETCH answer, from a siobridge or a
// Node.js node: {id, handshake, rooms, data}.
func socketInfoFromWire(v any, nsp string) (socketio.SocketInfo, bool) {
	o, ok := v.(*object)
	if !ok {
		return socketio.SocketInfo{}, false
	}
	id, ok := asString(o.get("id"))
	if !ok || id == "" {
		return socketio.SocketInfo{}, false
	}
	info := socketio.SocketInfo{ID: id, Namespace: nsp, Rooms: asRooms(o.get("rooms"))}
	slices.Sort(info.Rooms)
	if d := o.get("data"); d != nil {
		if _, undef := d.(undefined); !undef {
			info.Data = rawJSON(d)
		}
	}
	if h, ok := o.get("handshake").(*object); ok {
		info.Handshake = handshakeFromWire(h)
	}
	return info, true
}

// handshakeFromWire reads Node.js' socket.handshake, whose headers and query values may be
// arrays.
func handshakeFromWire(o *object) *socketio.Handshake {
	h := &socketio.Handshake{Headers: map[string]string{}, Query: map[string]string{}, Auth: json.RawMessage("{}")}
	h.Address, _ = asString(o.get("address"))
	h.Time, _ = asString(o.get("time"))
	h.URL, _ = asString(o.get("url"))
	h.Issued, _ = asInt(o.get("issued"))
	h.Secure = truthy(o.get("secure"))
	h.XDomain = truthy(o.get("xdomain"))
	if auth := o.get("auth"); auth != nil {
		h.Auth = rawJSON(auth)
	}
	text := func(v any) (string, bool) {
		switch x := v.(type) {
		case string:
			return x, true
		case int64, uint64, float64, bool:
			return propertyKey(x), true
		}
		return "", false
	}
	if headers, ok := o.get("headers").(*object); ok {
		for i, k := range headers.keys {
			if list, ok := headers.vals[i].([]any); ok {
				parts := make([]string, 0, len(list))
				for _, el := range list {
					if s, ok := text(el); ok {
						parts = append(parts, s)
					}
				}
				h.Headers[strings.ToLower(k)] = strings.Join(parts, ", ")
			} else if s, ok := text(headers.vals[i]); ok {
				h.Headers[strings.ToLower(k)] = s
			}
		}
	}
	if query, ok := o.get("query").(*object); ok {
		for i, k := range query.keys {
			v := query.vals[i]
			if list, ok := v.([]any); ok && len(list) > 0 {
				v = list[0]
			}
			if s, ok := text(v); ok {
				h.Query[k] = s
			}
		}
	}
	return h
}

// ackResultFromWire reads a BROADCAST_ACK: a siobridge node sends every argument ("args")
// and the socket id ("sid"), a Node.js node only the first argument ("packet").
func ackResultFromWire(o *object) (socketio.AckResult, error) {
	sid, _ := asString(o.get("sid"))
	var list []any
	if args, ok := o.get("args").([]any); ok {
		list = args
	} else if o.has("packet") {
		list = []any{o.get("packet")}
	}
	if list == nil {
		list = []any{}
	}
	args, err := argsFromWire(list)
	return socketio.AckResult{SocketID: sid, Args: args}, err
}

// jsonRequestID reads the "requestId" of a JSON answer when it is a string, decoding no
// more of it than the members before that one.
func jsonRequestID(payload []byte) (string, bool) {
	if len(payload) == 0 || payload[0] != '{' {
		return "", false
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	if _, err := d.Token(); err != nil {
		return "", false
	}
	for d.More() {
		key, err := d.Token()
		if err != nil {
			return "", false
		}
		if key != "requestId" {
			var skip json.RawMessage
			if d.Decode(&skip) != nil {
				return "", false
			}
			continue
		}
		v, err := d.Token()
		id, ok := v.(string)
		return id, err == nil && ok
	}
	return "", false
}

// binaryOnly returns atts, or nil for none: placeholders are resolved only in packets that
// came with attachments, as socket.io-parser does.
func binaryOnly(atts [][]byte) [][]byte {
	if len(atts) == 0 {
		return nil
	}
	return atts
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func dedupe(in []string) []string {
	if len(in) < 2 {
		return in
	}
	seen := make(map[string]struct{}, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sortSockets(s []socketio.SocketInfo) {
	slices.SortStableFunc(s, func(x, y socketio.SocketInfo) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
}
