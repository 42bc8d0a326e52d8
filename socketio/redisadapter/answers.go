package redisadapter

// This file holds this node's side of the other nodes' messages: their broadcasts are
// delivered to this node's sockets and their requests answered, on the hub's dispatcher
// goroutine, through the namespace's socketio.Local side.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/siobridge/siobridge/socketio"
)

// dispatch handles a broadcast or a request, unless the adapter has closed meanwhile.
func (a *Adapter) dispatch(m *redis.Message) {
	if a.ctx.Err() != nil {
		return
	}
	defer func() {
		// A message from the network must never take the process down.
		if r := recover(); r != nil {
			a.log.Error("redis adapter: panic while handling a message", "channel", m.Channel, "panic", r)
		}
	}()
	if m.Pattern != "" {
		a.onBroadcast(m.Channel, []byte(m.Payload))
		return
	}
	a.onRequest([]byte(m.Payload))
}

// onBroadcast delivers another node's broadcast ([uid, packet, opts]) to this node's sockets.
func (a *Adapter) onBroadcast(channel string, payload []byte) {
	if len(channel) < len(a.channel) || channel[:len(a.channel)] != a.channel {
		return
	}
	// Every broadcast this node publishes comes back to it: read the uid alone to skip them.
	if uid, err := peekUID(payload); err != nil || uid == a.uid {
		if err != nil {
			a.log.Debug("redis adapter: ignoring malformed broadcast", "channel", channel, "error", err)
		}
		return
	}
	v, err := decodeMsgpack(payload)
	if err != nil {
		a.log.Debug("redis adapter: ignoring malformed broadcast", "channel", channel, "error", err)
		return
	}
	msg, _ := v.([]any)
	if len(msg) < 2 {
		return
	}
	pkt, _ := msg[1].(*object)
	nsp := "/"
	if s, ok := asString(pkt.get("nsp")); ok {
		nsp = s
	}
	if pkt == nil || nsp != a.local.Name() {
		return
	}
	p, err := packetFromWire(pkt, nsp)
	if err != nil {
		a.log.Debug("redis adapter: ignoring broadcast", "error", err)
		return
	}
	var wopts *object
	if len(msg) > 2 {
		wopts, _ = msg[2].(*object)
	}
	opts := optsFromWire(wopts)
	if flags, ok := wopts.get("flags").(*object); ok {
		opts.Volatile = truthy(flags.get("volatile"))
	}
	n := a.local.Broadcast(p, opts)
	// A siobridge node's BroadcastCount asks for the count; Node.js nodes never do.
	if id, ok := asString(wopts.get("countRequestId")); ok && id != "" {
		uid, _ := asString(msg[0])
		a.respondJSON(uid, struct {
			RequestID string `json:"requestId"`
			Count     int    `json:"count"`
		}{id, n})
	}
}

// peekUID reads the first element of a msgpack array that starts with a string.
func peekUID(b []byte) (string, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := d.DecodeArrayLen()
	if err != nil {
		return "", err
	}
	if n < 1 {
		return "", errors.New("empty message")
	}
	v, err := decodeValue(d, len(b), 0)
	if err != nil {
		return "", err
	}
	s, _ := asString(v)
	return s, nil
}

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
	answerWithAcks(a.ctx, a.local, p, opts, ackWait(wopts),
		func(r socketio.AckResult) { a.publishAck(uid, reqID, r) },
		func(ids []string) {
			a.respondJSON(uid, struct {
				Type        int      `json:"type"`
				RequestID   string   `json:"requestId"`
				ClientCount int      `json:"clientCount"`
				SIDs        []string `json:"sids"`
			}{typeBroadcastClientCount, reqID, len(ids), nonNil(ids)})
		})
}

// ackWait is how long a broadcast with acks from another node waits for this node's sockets:
// its flags.timeout (milliseconds) up to maxAckWait, defaultAckWait without one.
func ackWait(wopts *object) time.Duration {
	if flags, ok := wopts.get("flags").(*object); ok {
		if ms, ok := asInt(flags.get("timeout")); ok && ms > 0 {
			return min(time.Duration(ms)*time.Millisecond, maxAckWait)
		}
	}
	return defaultAckWait
}

// answerWithAcks carries out another node's broadcast with acks on this node's sockets:
// count gets the ids of the sockets it reached, each ack goes to onAck as it comes, and the
// wait ends after wait, when parent ends, or as soon as every socket has answered.
func answerWithAcks(parent context.Context, local socketio.Local, p *socketio.Packet, opts socketio.BroadcastOptions, wait time.Duration, onAck func(socketio.AckResult), count func(ids []string)) {
	ctx, cancel := context.WithTimeout(parent, wait)
	var (
		mu       sync.Mutex
		expected = -1
		got      int
	)
	ids := local.BroadcastWithAck(ctx, p, opts, func(r socketio.AckResult) {
		onAck(r)
		mu.Lock()
		got++
		all := expected >= 0 && got >= expected
		mu.Unlock()
		if all {
			cancel() // every receiver answered: stop waiting
		}
	})
	count(ids)
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
