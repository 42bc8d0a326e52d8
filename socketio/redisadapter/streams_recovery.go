package redisadapter

// This file is the streams adapter's connection state recovery, as
// @socket.io/redis-streams-adapter 0.2.3 keeps it, so that a client may come back on any
// node, siobridge or Node.js: the session of a disconnected socket is a Redis key, and the
// packets it missed are the stream's entries after its offset.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/socketio"
)

// restoreRangeCount is how many entries one XRANGE of a restore asks for.
const restoreRangeCount = 1000

// offsetMessages encodes p, an event from the stream, with id appended as its last
// argument: the offset its receivers recover from.
func offsetMessages(p *socketio.Packet, id string) []*engineio.Message {
	q := *p
	data := make([]byte, 0, len(p.Data)+len(id)+3)
	data = append(data, p.Data[:len(p.Data)-1]...) // an event's data is a non-empty array
	data = append(data, ',', '"')
	data = append(data, id...)
	data = append(data, '"', ']')
	q.Data = data
	return socketio.EncodeMessages(&q)
}

// includedIn reports whether a socket in rooms was selected by a broadcast to opts: Node.js'
// shouldIncludePacket.
func includedIn(rooms []string, opts socketio.BroadcastOptions) bool {
	for _, r := range rooms {
		if slices.Contains(opts.Except, r) {
			return false
		}
	}
	if len(opts.Rooms) == 0 {
		return true
	}
	for _, r := range rooms {
		if slices.Contains(opts.Rooms, r) {
			return true
		}
	}
	return false
}

// deliverStored delivers a stored broadcast read from the stream to this node's sockets with
// its entry id as offset, and to the restores in progress it concerns, under mu.
func (a *StreamsAdapter) deliverStored(id string, m clusterMessage) {
	sid, ok := parseStreamID(id)
	if !ok {
		return
	}
	p, opts, ok := a.broadcastOf(m)
	if !ok {
		return
	}
	msgs := offsetMessages(p, id)
	a.mu.Lock()
	_, slow := a.local.Enqueue(msgs, opts)
	for r := range a.restores {
		if r.overflow || !includedIn(r.sess.Rooms, opts) {
			continue
		}
		if len(r.missed) >= int(a.opts.StreamMaxLen) {
			r.overflow, r.missed = true, nil
			continue
		}
		r.missed = append(r.missed, msgs)
	}
	a.advance(sid)
	a.mu.Unlock()
	for _, s := range slow {
		s.CloseSlow()
	}
}

// advance records, with mu held, that the namespace's entries up to id have been handled.
func (a *StreamsAdapter) advance(id streamID) {
	if a.seen.less(id) {
		a.seen = id
		close(a.progress)
		a.progress = make(chan struct{})
	}
}

// PersistSession implements [socketio.SessionStore]: SET <SessionKeyPrefix><pid> to base64 of
// the msgpack of {sid, pid, rooms, data}, expiring after the recovery window (PX), as the
// Node.js adapter does, without waiting.
func (a *StreamsAdapter) PersistSession(sess socketio.Session) {
	if a.recovery <= 0 {
		return
	}
	o := &object{}
	o.set("sid", sess.SID)
	o.set("pid", sess.PID)
	o.set("rooms", stringsToAny(nonNil(sess.Rooms)))
	o.set("data", sessionDataToWire(sess.Data))
	b, err := encodeMsgpack(o)
	if err != nil {
		a.log.Warn("redis streams adapter: session not kept: cannot encode it", "socket", sess.SID, "error", err)
		return
	}
	a.persists.Add(1)
	err = a.hub.send(streamOut{
		key:   a.opts.SessionKeyPrefix + sess.PID,
		value: base64.StdEncoding.EncodeToString(b),
		ttl:   a.recovery,
		done:  func(error) { a.persists.Add(-1) },
	})
	if err != nil {
		a.persists.Add(-1)
		a.log.Warn("redis streams adapter: session not kept", "socket", sess.SID, "error", err)
	}
}

// sessionDataToWire is a socket's data as a value of this package (JSON's).
func sessionDataToWire(data any) any {
	if data == nil {
		return nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil
	}
	v, err := parseArgs(b, nil)
	if err != nil {
		return nil
	}
	return v
}

// Sessions implements [socketio.SessionStore]: the sessions are Redis', so it counts only
// those queued for Redis and not yet answered, which keep a dynamic namespace (and the
// adapter that sends them) until they are.
func (a *StreamsAdapter) Sessions() int { return int(a.persists.Load()) }

// RestoreSession implements [socketio.SessionStore] as the Node.js adapter does: GET and DEL
// of the session's key in one MULTI, and XRANGE of the offset, which must still be in the
// stream; the namespace's stored broadcasts after it, those the session's rooms select,
// are the packets missed, each with its entry id as offset. It waits, bounded by
// RequestTimeout, for Redis, and for this node's reader to have delivered the entry at
// offset, so that every missed packet reaches the socket once, from the restore or live.
//
// What is replayed is what a live socket gets with an offset: events without ack and not
// volatile. Node.js 0.2.3 replays every BROADCAST entry its rooms select, volatile ones and
// those sent with acks (without their ack id) included; siobridge keeps socketio's rule, so
// that a recovered client never gets twice, or late, what it was not meant to keep.
func (a *StreamsAdapter) RestoreSession(pid, offset string) (socketio.Restore, bool) {
	if a.recovery <= 0 {
		return nil, false
	}
	off, ok := parseStreamID(offset)
	if !ok || pid == "" {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.timeout)
	defer cancel()
	key := a.opts.SessionKeyPrefix + pid
	tx := a.opts.Client.TxPipeline()
	get := tx.Get(ctx, key)
	tx.Del(ctx, key)
	_, err := tx.Exec(ctx)
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			a.log.Debug("redis streams adapter: session not restored", "error", err)
		}
		return nil, false
	}
	sess, err := decodeSession(get.Val())
	if err != nil || sess.PID != pid {
		a.log.Debug("redis streams adapter: session not restored: malformed", "error", err)
		return nil, false
	}
	at, err := a.opts.Client.XRange(ctx, a.hub.stream, offset, offset).Result()
	if err != nil || len(at) == 0 {
		a.log.Debug("redis streams adapter: session not restored: offset not in the stream", "offset", offset, "error", err)
		return nil, false
	}
	r := &streamRestore{a: a, sess: sess}
	if !a.register(ctx, r, off) {
		return nil, false
	}
	if err := r.collect(ctx, off); err != nil {
		r.Cancel()
		a.log.Debug("redis streams adapter: session not restored", "error", err)
		return nil, false
	}
	return r, true
}

// register adds r to the restores in progress once this node has delivered the entry at
// off, and records in r.end how far it had delivered then.
func (a *StreamsAdapter) register(ctx context.Context, r *streamRestore, off streamID) bool {
	for {
		a.mu.Lock()
		if !a.seen.less(off) {
			r.end = a.seen
			a.restores[r] = struct{}{}
			a.mu.Unlock()
			return true
		}
		progress := a.progress
		a.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			return false
		}
	}
}

// decodeSession reads a session as the Node.js adapter writes it.
func decodeSession(raw string) (socketio.Session, error) {
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return socketio.Session{}, err
	}
	v, err := decodeMsgpack(b)
	if err != nil {
		return socketio.Session{}, err
	}
	o, ok := v.(*object)
	if !ok {
		return socketio.Session{}, errors.New("session is not an object")
	}
	var sess socketio.Session
	if sess.SID, ok = o.get("sid").(string); !ok || sess.SID == "" {
		return socketio.Session{}, errors.New("session without sid")
	}
	sess.PID, _ = o.get("pid").(string)
	sess.Rooms = asRooms(o.get("rooms"))
	switch d := o.get("data").(type) {
	case nil, undefined:
	default:
		sess.Data = rawJSON(d)
	}
	return sess, nil
}

// streamRestore is a [socketio.Restore] of a StreamsAdapter.
type streamRestore struct {
	a    *StreamsAdapter
	sess socketio.Session
	end  streamID // the stream's entries up to it come from XRANGE, later ones live

	// With a.mu held once registered:
	ranged   [][]*engineio.Message // from XRANGE, up to end
	missed   [][]*engineio.Message // delivered live since registration
	overflow bool
}

// collect reads the entries after off up to end, in pages, bounded in number.
func (r *streamRestore) collect(ctx context.Context, off streamID) error {
	a := r.a
	if !off.less(r.end) {
		return nil
	}
	from := off.next()
	maxCalls := int(a.opts.StreamMaxLen/restoreRangeCount) + 10
	var got [][]*engineio.Message
	for range maxCalls {
		entries, err := a.opts.Client.XRangeN(ctx, a.hub.stream, from.String(), r.end.String(), restoreRangeCount).Result()
		if err != nil {
			return fmt.Errorf("XRANGE %s: %w", a.hub.stream, err)
		}
		for _, e := range entries {
			id, ok := parseStreamID(e.ID)
			if !ok {
				continue
			}
			from = id.next()
			if nsp, _ := e.Values["nsp"].(string); nsp != a.local.Name() {
				continue
			}
			if typ, _ := e.Values["type"].(string); typ != "3" {
				continue
			}
			m, err := decodeStreamEntry(e.Values)
			if err != nil || !isStoredBroadcast(m) {
				continue
			}
			p, opts, ok := a.broadcastOf(m)
			if !ok || !includedIn(r.sess.Rooms, opts) {
				continue
			}
			if len(got) >= int(a.opts.StreamMaxLen) {
				return errors.New("too many missed packets")
			}
			got = append(got, offsetMessages(p, e.ID))
		}
		if len(entries) < restoreRangeCount || r.end.less(from) {
			a.mu.Lock()
			r.ranged = got
			a.mu.Unlock()
			return nil
		}
	}
	return errors.New("too many missed packets")
}

// Session implements [socketio.Restore].
func (r *streamRestore) Session() socketio.Session { return r.sess }

// Resume implements [socketio.Restore].
func (r *streamRestore) Resume(fn func(missed [][]*engineio.Message, complete bool)) {
	a := r.a
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.restores, r)
	if r.overflow {
		fn(nil, false)
		return
	}
	fn(append(r.ranged, r.missed...), true)
	r.ranged, r.missed = nil, nil
}

// Cancel implements [socketio.Restore].
func (r *streamRestore) Cancel() {
	a := r.a
	a.mu.Lock()
	delete(a.restores, r)
	r.ranged, r.missed = nil, nil
	a.mu.Unlock()
}
