package redisadapter

// This file holds the messages of @socket.io/redis-adapter: their shapes, the requests this
// node sends and waits on, and its answers to other nodes' requests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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

// ---- requests this node sends ----

// pendingRequest gathers the answers to one request.
type pendingRequest struct {
	expect    int
	responses []*object
	done      chan struct{}
	// sockets marks a count's request for sockets (askForeign): each answer is kept as
	// {"count": n}, n the sockets it lists, read without decoding them.
	sockets bool
}

// request publishes the request that build makes with a new request id on the request
// channel, runs queued once it is queued, and, when expect > 0, gathers that many answers
// until ctx ends, RequestTimeout passes or the adapter closes. Nodes that did not answer in
// time are left out, without error.
func (a *Adapter) request(ctx context.Context, expect int, build func(id string) ([]byte, error), queued ...func()) ([]*object, error) {
	return a.requestOn(ctx, a.requestChannel, expect, build, queued...)
}

// requestOn is request published on channel.
func (a *Adapter) requestOn(ctx context.Context, channel string, expect int, build func(id string) ([]byte, error), queued ...func()) ([]*object, error) {
	o, err := a.send(channel, expect, false, build)
	for _, f := range queued {
		f()
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	return o.wait(ctx), nil
}

// outstanding is a request queued for the publisher, whose answers are gathered until wait.
type outstanding struct {
	a  *Adapter
	id string
	p  *pendingRequest // nil when no answer is awaited
}

// send queues the request that build makes with a new request id on channel; when expect >
// 0, the answers to it are gathered from then on (with sockets, as answers to a count's
// request for sockets: see pendingRequest). A caller that gets an outstanding must wait on
// it.
func (a *Adapter) send(channel string, expect int, sockets bool, build func(id string) ([]byte, error)) (*outstanding, error) {
	id := newID()
	payload, err := build(id)
	if err != nil {
		return nil, fmt.Errorf("redisadapter: encode request: %w", err)
	}
	o := &outstanding{a: a, id: id}
	if expect > 0 {
		o.p = &pendingRequest{expect: expect, done: make(chan struct{}), sockets: sockets}
		a.mu.Lock()
		a.pending[id] = o.p
		a.mu.Unlock()
	}
	if err := a.publish(channel, payload); err != nil {
		o.forget()
		return nil, err
	}
	return o, nil
}

// wait returns the answers gathered once every one expected is in, ctx ends or the adapter
// closes, and stops gathering them. A nil outstanding has none.
func (o *outstanding) wait(ctx context.Context) []*object {
	if o == nil || o.p == nil {
		return nil
	}
	defer o.forget()
	select {
	case <-o.p.done:
	case <-ctx.Done():
	case <-o.a.ctx.Done():
	}
	o.a.mu.Lock()
	out := slices.Clone(o.p.responses)
	o.a.mu.Unlock()
	if len(out) < o.p.expect {
		o.a.log.Debug("redis adapter request: some nodes did not answer in time", "answered", len(out), "expected", o.p.expect)
	}
	return out
}

func (o *outstanding) forget() {
	if o.p == nil {
		return
	}
	o.a.mu.Lock()
	delete(o.a.pending, o.id)
	o.a.mu.Unlock()
}

// onResponse handles an answer from another node, on the subscriber goroutine.
func (a *Adapter) onResponse(payload []byte) {
	if id, ok := jsonRequestID(payload); ok {
		// Every node gets the answers on the shared response channel: only the requester
		// decodes them.
		a.mu.Lock()
		p, ar := a.pending[id], a.ackReqs[id]
		a.mu.Unlock()
		if p == nil && ar == nil {
			return
		}
		if p != nil && p.sockets {
			a.onSocketCount(p, payload)
			return
		}
	}
	resp, err := decodeMessage(payload)
	if err != nil {
		a.log.Debug("redis adapter: ignoring malformed response", "error", err)
		return
	}
	id := propertyKey(resp.get("requestId"))
	typ, _ := asInt(resp.get("type"))
	a.mu.Lock()
	if ar := a.ackReqs[id]; ar != nil {
		switch typ {
		case typeBroadcastClientCount:
			n, _ := asInt(resp.get("clientCount"))
			sids := asRooms(resp.get("sids")) // siobridge nodes name the sockets they reached
			last := false
			if !ar.countsEnded {
				ar.countsLeft--
				if ar.countsLeft <= 0 {
					ar.countsEnded, last = true, true
				}
			}
			a.mu.Unlock()
			// Counted before the waiter is woken, so the total it passes on includes this one.
			ar.onCount(int(n), sids)
			if last {
				close(ar.countsDone)
			}
		case typeBroadcastAck:
			a.mu.Unlock()
			res, err := ackResultFromWire(resp)
			if err != nil {
				a.log.Debug("redis adapter: ignoring malformed ack", "error", err)
				return
			}
			ar.onAck(res)
		default:
			a.mu.Unlock()
		}
		return
	}
	if p := a.pending[id]; p != nil && len(p.responses) < p.expect {
		p.responses = append(p.responses, resp)
		if len(p.responses) == p.expect {
			close(p.done)
		}
	}
	a.mu.Unlock()
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

// onSocketCount keeps an answer to a count's request, {"requestId":..,"sockets":[..]}, as
// {"count": n}, reading the sockets it lists (ids, or sockets in full) without decoding
// them, so that a Node.js server's answer listing many holds the subscriber goroutine as
// little as it can.
func (a *Adapter) onSocketCount(p *pendingRequest, payload []byte) {
	var answer struct {
		Sockets []skipped `json:"sockets"`
	}
	if err := json.Unmarshal(payload, &answer); err != nil {
		a.log.Debug("redis adapter: ignoring malformed response", "error", err)
		return
	}
	count := &object{}
	count.set("count", int64(len(answer.Sockets)))
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(p.responses) < p.expect {
		p.responses = append(p.responses, count)
		if len(p.responses) == p.expect {
			close(p.done)
		}
	}
}

// skipped is any JSON value, left undecoded.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// ---- requests from other nodes ----

// responseChannelFor is where the answer to a request from node uid goes.
func (a *Adapter) responseChannelFor(uid string) string {
	if a.opts.PublishOnSpecificResponseChannel && uid != "" {
		return a.responseChannel + uid + "#"
	}
	return a.responseChannel
}

func (a *Adapter) respondJSON(uid string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.Warn("redis adapter: cannot encode response", "error", err)
		return
	}
	_ = a.publish(a.responseChannelFor(uid), b)
}

// onRequest handles a request from another node (or from @socket.io/redis-emitter, whose
// requests have no uid), on the dispatcher goroutine.
func (a *Adapter) onRequest(payload []byte) {
	req, err := decodeMessage(payload)
	if err != nil {
		a.log.Debug("redis adapter: ignoring malformed request", "error", err)
		return
	}
	uid, _ := asString(req.get("uid"))
	if uid == a.uid {
		return // this node's own request: done locally already
	}
	var reqID string
	if req.has("requestId") {
		reqID = propertyKey(req.get("requestId"))
	}
	typ, _ := asInt(req.get("type"))
	switch typ {
	case typeSockets:
		if reqID == "" || truthy(req.get("skipSiobridge")) {
			return // as for typeRemoteFetch
		}
		sockets := a.local.FetchSockets(socketio.BroadcastOptions{Rooms: asRooms(req.get("rooms"))})
		ids := make([]string, 0, len(sockets))
		for _, s := range sockets {
			ids = append(ids, s.ID)
		}
		a.respondJSON(uid, struct {
			RequestID string   `json:"requestId"`
			Sockets   []string `json:"sockets"`
		}{reqID, ids})

	case typeAllRooms:
		if reqID == "" {
			return
		}
		rooms := a.local.Rooms()
		ids := a.local.SocketIDs()
		counts := make(map[string]int, len(rooms))
		names := make([]string, 0, len(rooms)+len(ids))
		for _, r := range rooms {
			counts[r.Name] = r.Sockets
			names = append(names, r.Name)
		}
		// Node.js lists socket-id rooms too; so does this answer, for Node.js requesters.
		names = append(names, ids...)
		a.respondJSON(uid, struct {
			RequestID string         `json:"requestId"`
			Rooms     []string       `json:"rooms"`
			Counts    map[string]int `json:"counts"`
		}{reqID, names, counts})

	case typeRemoteJoin, typeRemoteLeave, typeRemoteDisconnect:
		a.onRemoteAction(req, typ, uid, reqID)

	case typeRemoteFetch:
		if reqID == "" || truthy(req.get("skipSiobridge")) {
			// A count's request for sockets is for the servers that are not siobridge
			// nodes: this node reports its own count in answer to the count's broadcast or
			// action.
			return
		}
		sockets := a.local.FetchSockets(optsFromWire(req.get("opts")))
		type wireSocket struct {
			ID        string              `json:"id"`
			Handshake *socketio.Handshake `json:"handshake"`
			Rooms     []string            `json:"rooms"`
			Data      json.RawMessage     `json:"data"`
		}
		out := make([]wireSocket, 0, len(sockets))
		for _, s := range sockets {
			data, err := json.Marshal(s.Data)
			if err != nil {
				a.log.Debug("redis adapter: socket data cannot be sent as JSON", "socket", s.ID, "error", err)
				data = json.RawMessage("null")
			}
			out = append(out, wireSocket{ID: s.ID, Handshake: s.Handshake, Rooms: nonNil(s.Rooms), Data: data})
		}
		a.respondJSON(uid, struct {
			RequestID string       `json:"requestId"`
			Sockets   []wireSocket `json:"sockets"`
		}{reqID, out})

	case typeServerSideEmit:
		a.log.Debug("redis adapter: ignoring serverSideEmit (not supported)", "from", uid)

	case typeBroadcast:
		a.onBroadcastRequest(req, uid, reqID)

	default:
		a.log.Debug("redis adapter: ignoring request of unknown type", "type", typ)
	}
}

// onRemoteAction makes this node's sockets join, leave or disconnect. The request selects
// them with opts (Node.js 4.x+ and the emitter), or names one socket with sid (older
// adapters, answered with {requestId} when the socket is here).
func (a *Adapter) onRemoteAction(req *object, typ int64, uid, reqID string) {
	if req.has("opts") {
		opts := optsFromWire(req.get("opts"))
		var n int
		switch typ {
		case typeRemoteJoin:
			n = a.local.AddSockets(opts, asRooms(req.get("rooms")))
		case typeRemoteLeave:
			n = a.local.DelSockets(opts, asRooms(req.get("rooms")))
		default:
			n = a.local.DisconnectSockets(opts, truthy(req.get("close")))
		}
		// Node.js nodes do not answer these; siobridge requesters send a requestId and wait
		// for the counts of the other siobridge nodes.
		if reqID != "" && uid != "" {
			a.respondJSON(uid, struct {
				RequestID string `json:"requestId"`
				Count     int    `json:"count"`
			}{reqID, n})
		}
		return
	}
	sid, _ := asString(req.get("sid"))
	s := a.local.Socket(sid)
	if s == nil {
		return
	}
	room := propertyKey(req.get("room"))
	switch typ {
	case typeRemoteJoin:
		s.Join(room)
	case typeRemoteLeave:
		s.Leave(room)
	default:
		s.Disconnect(truthy(req.get("close")))
	}
	if reqID != "" {
		a.respondJSON(uid, struct {
			RequestID string `json:"requestId"`
		}{reqID})
	}
}

// onBroadcastRequest delivers another node's broadcast with acks to this node's sockets and
// answers with their count (JSON) and then each ack (msgpack), as the Node.js adapter does.
// The packet gets an ack id of this node, valid for all its receivers
// (socketio.Local.BroadcastWithAck numbers it).
func (a *Adapter) onBroadcastRequest(req *object, uid, reqID string) {
	if reqID == "" {
		return
	}
	pv, _ := req.get("packet").(*object)
	if nsp, ok := asString(pv.get("nsp")); ok && nsp != a.local.Name() {
		return
	}
	p, err := packetFromWire(pv, a.local.Name())
	if err != nil {
		a.log.Debug("redis adapter: ignoring broadcast request", "error", err)
		return
	}
	wopts, _ := req.get("opts").(*object)
	opts := optsFromWire(wopts)
	wait := defaultAckWait
	if flags, ok := wopts.get("flags").(*object); ok {
		if ms, ok := asInt(flags.get("timeout")); ok && ms > 0 {
			wait = min(time.Duration(ms)*time.Millisecond, maxAckWait)
		}
	}
	ctx, cancel := context.WithTimeout(a.ctx, wait)
	var (
		mu       sync.Mutex
		expected = -1
		got      int
	)
	onAck := func(r socketio.AckResult) {
		a.publishAck(uid, reqID, r)
		mu.Lock()
		got++
		all := expected >= 0 && got >= expected
		mu.Unlock()
		if all {
			cancel() // every receiver answered: stop waiting
		}
	}
	ids := a.local.BroadcastWithAck(ctx, p, opts, onAck)
	a.respondJSON(uid, struct {
		Type        int      `json:"type"`
		RequestID   string   `json:"requestId"`
		ClientCount int      `json:"clientCount"`
		SIDs        []string `json:"sids"`
	}{typeBroadcastClientCount, reqID, len(ids), nonNil(ids)})
	mu.Lock()
	expected = len(ids)
	all := got >= expected
	mu.Unlock()
	if all {
		cancel()
	}
}

// publishAck answers one socket's ack to a broadcast request: "packet" is its first argument
// (all that Node.js nodes read), "args" all of them and "sid" the socket, for siobridge nodes.
func (a *Adapter) publishAck(uid, reqID string, r socketio.AckResult) {
	var list []any
	if len(r.Args.Raw) > 0 {
		v, err := parseArgs(r.Args.Raw, binaryOnly(r.Args.Attachments))
		if err != nil {
			a.log.Debug("redis adapter: cannot forward ack", "error", err)
			return
		}
		list, _ = v.([]any)
	}
	o := &object{}
	o.set("type", int64(typeBroadcastAck))
	o.set("requestId", reqID)
	if len(list) > 0 {
		o.set("packet", list[0])
	}
	o.set("sid", r.SocketID)
	o.set("args", nonNilAny(list))
	b, err := encodeMsgpack(o)
	if err != nil {
		a.log.Debug("redis adapter: cannot encode ack", "error", err)
		return
	}
	_ = a.publish(a.responseChannelFor(uid), b)
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
