package redisadapter

// The hub's four goroutines, all ended by hub.stop:
//
//   - the subscriber reads the shared subscription connection, answers for its health, hands
//     broadcasts and requests to the dispatcher and settles responses itself (so that a
//     request handler that waits for other nodes cannot block the answers it waits for);
//   - the keeper sends SUBSCRIBE and UNSUBSCRIBE as namespaces come and go, so that neither
//     making a namespace nor closing one waits on Redis;
//   - the dispatcher delivers broadcasts to this node's sockets and answers requests, one at
//     a time in the order Redis delivered them (so in order within each namespace);
//   - the publisher PUBLISHes what the adapters queued, in order, pipelining what piled up.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/siobridge/siobridge/socketio"
)

const (
	// publishTimeout bounds one PUBLISH (or pipeline of them).
	publishTimeout = 2 * time.Second
	// publishPause is how long the publisher drops messages without trying after Redis
	// refused one, so a dead Redis costs no time per broadcast and the queue does not fill.
	publishPause = time.Second
	// dropLogEvery spaces the warnings about dropped messages.
	dropLogEvery = 10 * time.Second
	// flushOnClose bounds how long stopping lets the publisher send what is queued.
	flushOnClose = time.Second
	// maxBackoff caps the wait between two attempts to reach Redis.
	maxBackoff = 2 * time.Second
)

// subscribeLoop is the subscriber goroutine.
func (h *hub) subscribeLoop() {
	defer h.wg.Done()
	h.mu.Lock()
	ps := h.ps
	h.mu.Unlock()
	var backoff time.Duration
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(h.ctx, pingInterval)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					// The ping got no answer: the connection is dead without having been
					// closed (a network partition). Start over on a new one.
					h.connLost(fmt.Errorf("no answer to a ping within %s", pingInterval))
					if ps = h.renewPubSub(ps); ps == nil {
						return
					}
					pinged = false
					continue
				}
				if perr := ps.Ping(h.ctx); perr != nil {
					h.connLost(perr)
				} else {
					pinged = true
				}
				continue
			}
			// A broken connection: go-redis dials again (and subscribes again) on the next
			// receive; wait a little first, so a Redis that is down costs no busy loop.
			h.connLost(err)
			backoff = min(max(2*backoff, 50*time.Millisecond), maxBackoff)
			if !h.sleep(backoff) {
				return
			}
			continue
		}
		backoff, pinged = 0, false
		h.connUp()
		switch m := msg.(type) {
		case *redis.Subscription:
			h.onSubscription(m)
		case *redis.Message:
			h.route(m)
		}
	}
}

func (h *hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// keepLoop is the keeper goroutine.
func (h *hub) keepLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.resync:
			h.syncSubscriptions()
		}
	}
}

// dispatchLoop is the dispatcher goroutine.
func (h *hub) dispatchLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case d := <-h.inbox:
			d.a.dispatch(d.m)
		}
	}
}

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
	if pkt == nil || nsp != a.ns.Name() {
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
	n, _ := a.local.Broadcast(p, opts)
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

// publishLoop is the publisher goroutine.
func (h *hub) publishLoop() {
	defer h.wg.Done()
	var st publishState
	batch := make([]outgoing, 0, 64)
	for {
		select {
		case m := <-h.outbox:
			batch = h.fill(append(batch[:0], m))
			h.flush(context.Background(), batch, &st)
		case <-h.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), flushOnClose)
			for ctx.Err() == nil {
				batch = h.fill(batch[:0])
				if len(batch) == 0 {
					break
				}
				h.flush(ctx, batch, &st)
			}
			cancel()
			st.report(h, true)
			return
		}
	}
}

// fill adds what is queued to batch, up to its capacity, without waiting.
func (h *hub) fill(batch []outgoing) []outgoing {
	for len(batch) < cap(batch) {
		select {
		case m := <-h.outbox:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// publishState is the publisher's memory of failures, for pauses and sparse logs.
type publishState struct {
	pausedUntil time.Time
	dropped     int
	lastErr     error
	lastLog     time.Time
}

func (st *publishState) report(h *hub, final bool) {
	if st.dropped == 0 || (!final && time.Since(st.lastLog) < dropLogEvery) {
		return
	}
	h.log.Warn("redis adapter could not publish; other nodes missed these messages", "dropped", st.dropped, "error", st.lastErr)
	st.dropped, st.lastLog = 0, time.Now()
}

// flush publishes batch in one round trip; on failure the messages are dropped (delivery is
// at most once) and the publisher pauses.
func (h *hub) flush(ctx context.Context, batch []outgoing, st *publishState) {
	if time.Now().Before(st.pausedUntil) {
		st.dropped += len(batch)
		st.report(h, false)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	var err error
	if len(batch) == 1 {
		err = h.client.Publish(ctx, batch[0].channel, batch[0].payload).Err()
	} else {
		pipe := h.client.Pipeline()
		for _, m := range batch {
			pipe.Publish(ctx, m.channel, m.payload)
		}
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		st.pausedUntil = time.Now().Add(publishPause)
		st.dropped += len(batch)
		st.lastErr = err
		st.report(h, false)
		return
	}
	if st.dropped > 0 {
		st.report(h, true)
	}
}

var _ socketio.Adapter = (*Adapter)(nil)
