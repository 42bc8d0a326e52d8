package redisadapter

// The adapter's three goroutines, all ended by Close:
//
//   - the subscriber reads the subscription connection, answers for its health, hands
//     broadcasts and requests to the dispatcher and settles responses itself (so that a
//     request handler that waits for other nodes cannot block the answers it waits for);
//   - the dispatcher delivers broadcasts to this node's sockets and answers requests, one at
//     a time in the order Redis delivered them;
//   - the publisher PUBLISHes what the adapter queued, in order, pipelining what piled up.

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
	// flushOnClose bounds how long Close lets the publisher send what is queued.
	flushOnClose = time.Second
	// maxBackoff caps the wait between two attempts to reach Redis.
	maxBackoff = 2 * time.Second
)

// subscriptions is how many channels and patterns a healthy subscriber connection has.
const subscriptions = 5

func (a *Adapter) subscribe(ps *redis.PubSub) {
	// The channels are recorded even when Redis cannot be reached: go-redis subscribes again
	// to all of them on every new connection.
	err := ps.Subscribe(a.ctx, a.requestChannel, a.responseChannel, a.specificResponseChannel, a.presenceChannel)
	if perr := ps.PSubscribe(a.ctx, a.channel+"*"); err == nil {
		err = perr
	}
	if err != nil && a.ctx.Err() == nil {
		a.setHealth(err)
	}
}

// subscribeLoop is the subscriber goroutine.
func (a *Adapter) subscribeLoop() {
	defer a.wg.Done()
	a.mu.Lock()
	ps := a.ps
	a.mu.Unlock()
	a.subscribe(ps)
	var backoff time.Duration
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(a.ctx, pingInterval)
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pinged {
					// The ping got no answer: the connection is dead without having been
					// closed (a network partition). Start over on a new one.
					a.setHealth(fmt.Errorf("no answer to a ping within %s", pingInterval))
					if ps = a.renewPubSub(ps); ps == nil {
						return
					}
					pinged = false
					continue
				}
				if perr := ps.Ping(a.ctx); perr != nil {
					a.setHealth(perr)
				} else {
					pinged = true
				}
				continue
			}
			// A broken connection: go-redis dials again (and subscribes again) on the next
			// receive; wait a little first, so a Redis that is down costs no busy loop.
			a.setHealth(err)
			backoff = min(max(2*backoff, 50*time.Millisecond), maxBackoff)
			if !a.sleep(backoff) {
				return
			}
			continue
		}
		backoff, pinged = 0, false
		switch m := msg.(type) {
		case *redis.Subscription:
			if (m.Kind == "subscribe" || m.Kind == "psubscribe") && m.Count >= subscriptions {
				a.setHealth(nil)
			}
		case *redis.Message:
			a.route(m)
		}
	}
}

// renewPubSub replaces the subscriber connection; nil once the adapter is closed.
func (a *Adapter) renewPubSub(old *redis.PubSub) *redis.PubSub {
	_ = old.Close()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	ps := a.client.Subscribe(a.ctx)
	a.ps = ps
	a.mu.Unlock()
	a.subscribe(ps)
	return ps
}

func (a *Adapter) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.ctx.Done():
		return false
	}
}

// route sorts a message from Redis: responses are settled here, the rest waits for the
// dispatcher.
func (a *Adapter) route(m *redis.Message) {
	switch {
	case m.Pattern != "" || m.Channel == a.requestChannel:
		select {
		case a.inbox <- m:
		case <-a.ctx.Done():
		}
	case m.Channel == a.responseChannel || m.Channel == a.specificResponseChannel:
		a.onResponse([]byte(m.Payload))
	}
}

// dispatchLoop is the dispatcher goroutine.
func (a *Adapter) dispatchLoop() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case m := <-a.inbox:
			a.dispatch(m)
		}
	}
}

func (a *Adapter) dispatch(m *redis.Message) {
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
func (a *Adapter) publishLoop() {
	defer a.wg.Done()
	var st publishState
	batch := make([]outgoing, 0, 64)
	for {
		select {
		case m := <-a.outbox:
			batch = a.fill(append(batch[:0], m))
			a.flush(context.Background(), batch, &st)
		case <-a.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), flushOnClose)
			for ctx.Err() == nil {
				batch = a.fill(batch[:0])
				if len(batch) == 0 {
					break
				}
				a.flush(ctx, batch, &st)
			}
			cancel()
			st.report(a, true)
			return
		}
	}
}

// fill adds what is queued to batch, up to its capacity, without waiting.
func (a *Adapter) fill(batch []outgoing) []outgoing {
	for len(batch) < cap(batch) {
		select {
		case m := <-a.outbox:
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

func (st *publishState) report(a *Adapter, final bool) {
	if st.dropped == 0 || (!final && time.Since(st.lastLog) < dropLogEvery) {
		return
	}
	a.log.Warn("redis adapter could not publish; other nodes missed these messages", "dropped", st.dropped, "error", st.lastErr)
	st.dropped, st.lastLog = 0, time.Now()
}

// flush publishes batch in one round trip; on failure the messages are dropped (delivery is
// at most once) and the publisher pauses.
func (a *Adapter) flush(ctx context.Context, batch []outgoing, st *publishState) {
	if time.Now().Before(st.pausedUntil) {
		st.dropped += len(batch)
		st.report(a, false)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	var err error
	if len(batch) == 1 {
		err = a.client.Publish(ctx, batch[0].channel, batch[0].payload).Err()
	} else {
		pipe := a.client.Pipeline()
		for _, m := range batch {
			pipe.Publish(ctx, m.channel, m.payload)
		}
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		st.pausedUntil = time.Now().Add(publishPause)
		st.dropped += len(batch)
		st.lastErr = err
		st.report(a, false)
		return
	}
	if st.dropped > 0 {
		st.report(a, true)
	}
}

var _ socketio.Adapter = (*Adapter)(nil)
